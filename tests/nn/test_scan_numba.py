"""The numba selective-scan kernel against the sequential reference: forward and every gradient."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("numba")

from recwise.errors import ConfigError
from recwise.nn._scan_numba import causal_conv1d_silu_numba, selective_scan_numba, selective_scan_numba_v1
from recwise.nn.mamba import Mamba, scan_impl, selective_scan, selective_scan_ref


def _inputs(b: int, d: int, L: int, n: int, seed: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, d, L, generator=g, dtype=dtype)
    delta = torch.randn(b, d, L, generator=g, dtype=dtype) * 0.5
    A = -torch.rand(d, n, generator=g, dtype=dtype) * 2 - 0.1
    B = torch.randn(b, n, L, generator=g, dtype=dtype)
    C = torch.randn(b, n, L, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    z = torch.randn(b, d, L, generator=g, dtype=dtype)
    bias = torch.randn(d, generator=g, dtype=dtype) * 0.1
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]


def _run(fn, args: list[torch.Tensor], use_D: bool, use_z: bool, use_bias: bool, softplus: bool):  # noqa: ANN001, ANN202
    u, delta, A, B, C, D, z, bias = args
    y = fn(u, delta, A, B, C, D if use_D else None, z=z if use_z else None,
           delta_bias=bias if use_bias else None, delta_softplus=softplus)
    loss = y.sum() + (y**2).mean() + (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum()
    used = [u, delta, A, B, C] + [t for t, on in ((D, use_D), (z, use_z), (bias, use_bias)) if on]
    return y, torch.autograd.grad(loss, used)


# random shapes (batch, channels, length, state) and every combination of the optional inputs
CASES = [((1, 1, 1, 1), True, True, True, True), ((2, 3, 7, 4), False, False, False, False),
         ((3, 5, 13, 6), True, False, True, True), ((2, 4, 50, 8), False, True, False, True),
         ((4, 2, 33, 3), True, True, False, False), ((1, 6, 64, 5), False, True, True, True)]


@pytest.mark.parametrize("fn", [selective_scan_numba, selective_scan_numba_v1], ids=["numba", "numba_v1"])
@pytest.mark.parametrize(("shape", "use_D", "use_z", "use_bias", "softplus"), CASES)
def test_numba_scan_matches_reference_float32(fn, shape, use_D, use_z, use_bias, softplus) -> None:  # noqa: ANN001
    args = _inputs(*shape, seed=sum(shape))
    y_ref, g_ref = _run(selective_scan_ref, args, use_D, use_z, use_bias, softplus)
    y, g = _run(fn, args, use_D, use_z, use_bias, softplus)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    assert len(g) == len(g_ref)
    for a, r in zip(g, g_ref):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)


def test_numba_scan_float64_matches_reference_tightly() -> None:
    args = _inputs(3, 4, 29, 5, seed=7, dtype=torch.float64)
    y_ref, g_ref = _run(selective_scan_ref, args, True, True, True, True)
    y, g = _run(selective_scan_numba, args, True, True, True, True)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=1e-10)
    for a, r in zip(g, g_ref):
        torch.testing.assert_close(a, r, atol=1e-10, rtol=1e-10)


def test_numba_scan_gradcheck_float64() -> None:
    u, delta, A, B, C, D, z, bias = _inputs(2, 2, 6, 3, seed=3, dtype=torch.float64)

    def f(u, delta, A, B, C, D, z, bias):  # noqa: ANN001, ANN202
        return selective_scan_numba(u, delta, A, B, C, D, z, bias, delta_softplus=True)

    assert torch.autograd.gradcheck(f, (u, delta, A, B, C, D, z, bias))


def test_softplus_threshold_and_large_steps() -> None:
    # softplus passes values above 20 through unchanged (torch's threshold): both branches covered
    args = _inputs(2, 3, 9, 4, seed=11)
    with torch.no_grad():
        args[1][:, :, ::2] += 25.0
        args[1][:, :, 1::2] -= 3.0
    y_ref, g_ref = _run(selective_scan_ref, args, True, True, True, True)
    y, g = _run(selective_scan_numba, args, True, True, True, True)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for a, r in zip(g, g_ref):
        torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-5)


def test_numba_matches_parallel_on_non_contiguous_inputs() -> None:
    u, delta, A, B, C, D, z, bias = _inputs(3, 4, 10, 3, seed=5)
    Bn = B.detach().transpose(1, 2).contiguous().transpose(1, 2)  # (b, n, l) view of a (b, l, n) tensor
    assert not Bn.is_contiguous()
    y = selective_scan_numba(u, delta, A, Bn, C, D, z, bias, delta_softplus=True)
    y_par = selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True)
    torch.testing.assert_close(y, y_par, atol=1e-5, rtol=1e-5)


def test_auto_picks_numba_on_cpu_and_mamba_block_agrees() -> None:
    assert scan_impl("auto", on_cuda=False) is selective_scan_numba
    with pytest.raises(ConfigError, match="option 'scan'"):
        scan_impl("fast", on_cuda=False)  # type: ignore[arg-type]
    torch.manual_seed(0)
    m = Mamba(d_model=8, d_state=4, d_conv=4, expand=2)
    x = torch.randn(2, 12, 8, requires_grad=True)
    y = m(x)  # auto -> numba
    gx, gA = torch.autograd.grad(y.square().sum(), (x, m.A_log))
    for impl in ("sequential", "numba_v1"):  # the (B, d, L) path of mamba_ssm's layout
        m.scan = impl
        y_ref = m(x)
        gx_ref, gA_ref = torch.autograd.grad(y_ref.square().sum(), (x, m.A_log))
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gx, gx_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gA, gA_ref, atol=1e-5, rtol=1e-5)
    # ``at``: only the output at one position per row, the same values and gradients
    at = torch.tensor([11, 4])
    m.scan = "numba"
    y_at = m(x, at=at)
    torch.testing.assert_close(y_at, y[torch.arange(2), at], atol=1e-6, rtol=1e-6)
    gx_at = torch.autograd.grad(y_at.square().sum(), x)[0]
    m.scan = "sequential"
    gx_at_ref = torch.autograd.grad(m(x)[torch.arange(2), at].square().sum(), x)[0]
    torch.testing.assert_close(gx_at, gx_at_ref, atol=1e-5, rtol=1e-5)


def test_channel_blocks_and_long_state_match_reference() -> None:
    # more channels than one block of the kernel (64) and a tail block; 32 states as Mamba4Rec/SIGMA
    args = _inputs(2, 150, 20, 32, seed=21)
    y_ref, g_ref = _run(selective_scan_ref, args, True, True, True, True)
    y, g = _run(selective_scan_numba, args, True, True, True, True)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for a, r in zip(g, g_ref):
        torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)


def test_last_step_and_loss_at_one_position_per_row() -> None:
    # prefix training: each row's output is read at one position; the kernel stops there (``last``)
    # and the backward skips the steps after the last nonzero gradient: same values and gradients
    u, delta, A, B, C, D, z, bias = args = _inputs(4, 6, 30, 5, seed=9)
    at = torch.tensor([29, 0, 13, 7])
    rows = torch.arange(4)
    y_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, delta_softplus=True)[rows, :, at]
    g_ref = torch.autograd.grad(y_ref.square().sum(), args)
    y_full = selective_scan_numba(u, delta, A, B, C, D, z, bias, delta_softplus=True, last=at)
    assert float(y_full.detach()[1, :, 1:].abs().max()) == 0.0  # not computed after ``last``
    y = y_full[rows, :, at]
    g = torch.autograd.grad(y.square().sum(), args)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for a, r in zip(g, g_ref):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)


def test_prefix_loss_gradients_do_not_underflow_into_subnormals() -> None:
    # a loss at the first step only: the reverse recurrence decays for many steps (flushed to 0)
    args = _inputs(2, 4, 200, 8, seed=4)
    bias, A = args[7], args[2]
    with torch.no_grad():
        A.mul_(20.0)
    g = torch.autograd.grad(selective_scan_numba(*args[:7], bias, delta_softplus=True)[:, :, 0].sum(), args)
    g_ref = torch.autograd.grad(selective_scan_ref(*args[:7], bias, delta_softplus=True)[:, :, 0].sum(), args)
    for a, r in zip(g, g_ref):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_causal_conv_silu_matches_torch_conv(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 9, 70, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(70, 1, 4, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(70, generator=g, dtype=dtype, requires_grad=True)
    y = causal_conv1d_silu_numba(x, w, b)
    y_ref = torch.nn.functional.silu(torch.nn.functional.conv1d(x.transpose(1, 2), w, b, padding=3, groups=70)[..., :9])
    y_ref = y_ref.transpose(1, 2)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol)
    gy = torch.randn(y.shape, generator=g, dtype=dtype)
    for a, r in zip(torch.autograd.grad((y * gy).sum(), (x, w, b)), torch.autograd.grad((y_ref * gy).sum(), (x, w, b))):
        torch.testing.assert_close(a, r, atol=tol * 10, rtol=tol)
