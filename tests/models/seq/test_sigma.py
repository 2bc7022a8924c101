"""SIGMA's released details: the partial flip, the shared Mamba, the gate quirk, raw weights."""

from __future__ import annotations

import pytest
import torch

from recwise.data.sequence import seq_schema
from recwise.models.seq._base import dropout
from recwise.models.seq.mamba4rec import Mamba4Rec, Mamba4RecConfig, dropout_at
from recwise.models.seq.sigma import SIGMA, GMambaBlock, SIGMAConfig, partial_flip
from recwise.tasks.sequential import seq_loss


def test_flip_covers_exactly_first_45_of_50() -> None:
    x = torch.arange(50.0).view(1, 50, 1)
    y = partial_flip(x, 45)[0, :, 0]
    assert y[:45].tolist() == list(range(44, -1, -1))
    assert y[45:].tolist() == [45.0, 46.0, 47.0, 48.0, 49.0]


def test_block_feeds_one_shared_mamba_the_input_and_its_partial_flip() -> None:
    torch.manual_seed(0)
    block = GMambaBlock(SIGMAConfig(hidden_size=16, d_state=4)).eval()
    seen = []
    block.mamba.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    x = torch.randn(2, 50, 16)
    block(x)
    assert len(seen) == 1 and seen[0].shape[0] == 4  # one module, both directions in one call
    torch.testing.assert_close(seen[0][:2], x)
    torch.testing.assert_close(seen[0][2:, :45], x[:, :45].flip(1))
    torch.testing.assert_close(seen[0][2:, 45:], x[:, 45:])
    assert sum(isinstance(m, type(block.mamba)) for m in block.modules()) == 1


def test_flip_len_fixed_or_scaled_with_length() -> None:
    assert GMambaBlock(SIGMAConfig(hidden_size=16)).flip_len(200) == 45  # as released on ML-1M
    assert GMambaBlock(SIGMAConfig(hidden_size=16, flip_scale=True)).flip_len(200) == 180


def test_gate_quirk_and_corrected_variant_differ_and_weights_are_raw() -> None:
    torch.manual_seed(0)
    a = SIGMA(seq_schema(20), SIGMAConfig(hidden_size=16, d_state=4)).eval()
    b = SIGMA(seq_schema(20), SIGMAConfig(hidden_size=16, d_state=4, gate="corrected")).eval()
    b.load_state_dict(a.state_dict())
    batch = {"item_seq": torch.randint(1, 21, (3, 50)), "item_len": torch.full((3,), 50)}
    assert not torch.allclose(a(batch), b(batch))
    w = a.layers[0].block.combining_weights
    assert w.requires_grad and w.tolist() == pytest.approx([0.1, 0.1, 0.8])
    assert not any("position" in n for n, _ in a.named_parameters())  # no positional embedding
    assert SIGMA.examples == ("prefix",)


def test_dropout_at_reads_the_full_tensors_mask() -> None:
    x = torch.randn(5, 7, 6)
    rows, at = torch.arange(5), torch.tensor([6, 0, 3, 3, 5])
    torch.manual_seed(3)
    full = dropout(x, 0.3, True)[rows, at]
    state = torch.get_rng_state()
    torch.manual_seed(3)
    torch.testing.assert_close(dropout_at(x[rows, at], tuple(x.shape), rows, at, 0.3, True), full)
    assert torch.equal(torch.get_rng_state(), state)  # the same random bits consumed


def _one_step(cls, cfg, **opts: object):  # noqa: ANN001, ANN202
    torch.manual_seed(0)
    model = cls(seq_schema(30), cfg(hidden_size=16, d_state=4, **opts))
    g = torch.Generator().manual_seed(1)
    lens = torch.randint(1, 51, (6,), generator=g)
    seq = torch.randint(1, 31, (6, 50), generator=g) * (torch.arange(50) < lens[:, None])
    batch = {"item_seq": seq, "item_len": lens, "target": torch.randint(1, 31, (6,), generator=g)}
    torch.manual_seed(5)  # the dropout masks
    loss = seq_loss(model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(("cls", "cfg"), [(SIGMA, SIGMAConfig), (Mamba4Rec, Mamba4RecConfig)])
@pytest.mark.parametrize("layers", [1, 2])
def test_last_position_forward_gives_the_numbers_of_the_full_one(cls, cfg, layers: int) -> None:  # noqa: ANN001
    # training mode, dropout on: positions="last" (default, numba kernels) against every position
    # computed then gathered, with the first numba kernel and with the sequential reference scan
    loss, grads = _one_step(cls, cfg, num_layers=layers)
    for scan in ("numba_v1", "sequential"):
        loss_ref, grads_ref = _one_step(cls, cfg, num_layers=layers, positions="all", scan=scan)
        torch.testing.assert_close(loss, loss_ref)
        assert grads.keys() == grads_ref.keys()
        for name in grads:
            torch.testing.assert_close(grads[name], grads_ref[name], atol=1e-5, rtol=1e-4)


def test_fe_conv_as_one_gemm_equals_the_convolution() -> None:
    torch.manual_seed(0)
    block = GMambaBlock(SIGMAConfig(hidden_size=16, d_state=4))
    x = torch.randn(3, 11, 16, requires_grad=True)
    params = [x, block.conv1d.weight, block.conv1d.bias]
    y = block.fe_conv(x)
    y_ref = block.conv1d(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(y, y_ref)
    for a, r in zip(torch.autograd.grad(y.square().sum(), params), torch.autograd.grad(y_ref.square().sum(), params)):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)
