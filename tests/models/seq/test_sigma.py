"""SIGMA's released details: the partial flip, the shared Mamba, the gate quirk, raw weights."""

from __future__ import annotations

import pytest
import torch

from recwise.data.sequence import seq_schema
from recwise.models.seq.sigma import SIGMA, GMambaBlock, SIGMAConfig, partial_flip


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
