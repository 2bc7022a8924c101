"""The parallel selective scan against the sequential reference, and the Mamba block."""

from __future__ import annotations

import pytest
import torch

from recwise.nn.mamba import Mamba, linear_scan, selective_scan, selective_scan_ref


def _inputs(b: int, d: int, L: int, n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, d, L, generator=g)
    delta = torch.randn(b, d, L, generator=g) * 0.5
    A = -torch.rand(d, n, generator=g) * 2 - 0.1
    B = torch.randn(b, n, L, generator=g)
    C = torch.randn(b, n, L, generator=g)
    D = torch.randn(d, generator=g)
    z = torch.randn(b, d, L, generator=g)
    bias = torch.randn(d, generator=g) * 0.1
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]


@pytest.mark.parametrize("L", [1, 7, 50, 200])
def test_parallel_scan_matches_reference_forward_and_grads(L: int) -> None:
    args = _inputs(2, 6, L, 5)
    y_ref = selective_scan_ref(*args[:7], delta_bias=args[7], delta_softplus=True)
    grads_ref = torch.autograd.grad(y_ref.sum() + (y_ref**2).mean(), args)
    y = selective_scan(*args[:7], delta_bias=args[7], delta_softplus=True)
    grads = torch.autograd.grad(y.sum() + (y**2).mean(), args)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for g, gr in zip(grads, grads_ref):
        torch.testing.assert_close(g, gr, atol=1e-5, rtol=1e-5)


def test_linear_scan_gradcheck() -> None:
    a = torch.rand(2, 3, 9, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, 9, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(linear_scan, (a, b))


def test_mamba_block_interface_and_impls_agree() -> None:
    torch.manual_seed(0)
    m = Mamba(d_model=16, d_state=8, d_conv=4, expand=2)
    names = {n for n, _ in m.named_parameters()}
    assert names == {"in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight",
                     "dt_proj.bias", "A_log", "D", "out_proj.weight"}  # mamba_ssm.Mamba's names
    x = torch.randn(3, 20, 16)
    y = m(x)
    assert y.shape == x.shape
    m.scan = "sequential"
    torch.testing.assert_close(m(x), y, atol=1e-5, rtol=1e-5)
    # causal: changing a later input does not change earlier outputs
    x2 = x.clone()
    x2[:, 10:] += 1.0
    m.scan = "parallel"
    torch.testing.assert_close(m(x2)[:, :10], y[:, :10])
