"""Fused selective scan on CPU with numba (the ``fast`` extra): forward and backward kernels.

One kernel call does what mamba_ssm's CUDA kernel does, per batch row ``b`` and channel ``d``::

    dt[t] = softplus(delta[t] + delta_bias)            (each step optional)
    h[t]  = exp(dt[t] A) * h[t-1] + dt[t] B[t] u[t]    (h: d_state values, kept in a local buffer)
    y[t]  = <h[t], C[t]> + D u[t],   out[t] = y[t] * silu(z[t])

Nothing of size (B, D, L, N) is ever allocated: the forward keeps one state vector per (b, d); the
backward recomputes the states of one (b, d) into an (L, N) scratch buffer (about 6 KB at
L = 50, N = 32) and runs the reverse-time recurrence ``G[t] = dy[t] C[t] + exp(dt[t+1] A) G[t+1]``
over it. Work is split over batch rows (``prange``); the gradients that sum over rows (A, D,
delta_bias) are summed per block of rows, then across blocks, so no two threads write one value.

With the loss at one position (prefix training) ``dy`` is 0 elsewhere and ``G`` only decays, into
subnormal floats that x86 handles ~100x slower (measured 3x on SIGMA's whole scan backward):
states and ``G`` below 1e-30 (float32; 1e-280 float64) are set to 0.

The kernels compile on first use (a few seconds) and are cached on disk (``cache=True``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

__all__ = ["selective_scan_numba"]

# numba's default threading layer here is OpenMP, whose pool next to torch's costs several ms of
# CPU per kernel call (measured: 7 ms vs 0.6 ms for a batch-4 forward on a loaded 2-core VM); the
# kernels split their work into a few coarse blocks, for which the workqueue layer is enough.
# Applies when the layer is not chosen already (NUMBA_THREADING_LAYER) and no parallel numba code ran.
# workqueue does not allow concurrent kernel calls from several Python threads: set
# NUMBA_THREADING_LAYER=omp (or tbb) for that.
# (numba.config fills its attributes at import time: mypy does not see them)
if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":  # type: ignore[attr-defined]
    numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]

_FM = {"reassoc", "contract", "nsz", "arcp"}  # lets LLVM vectorise the loops over states (no nnan/ninf)
_JIT: dict[str, Any] = {"nogil": True, "cache": True, "fastmath": _FM, "error_model": "numpy"}


def _blocks(nb: int) -> int:
    return max(1, min(nb, 4 * numba.get_num_threads()))


# --- exp: float32 by a polynomial that vectorises (no SVML here), float64 by math.exp ------------

@intrinsic
def _bits_to_f32(typingctx, x):  # pragma: no cover - compiled
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


_F = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_P = tuple(_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                            1.6666665459e-1, 5.0000001201e-1))  # Cephes expf, |rel err| < 2e-7
_LO, _HI, _HALF, _ONE = _F(-87.0), _F(88.0), _F(0.5), _F(1.0)


def _exp(x):  # pragma: no cover - replaced in compiled code
    return math.exp(x)


@overload(_exp, inline="always", jit_options={"fastmath": _FM})
def _exp_overload(x):  # pragma: no cover - compiled
    if x == types.float32:
        p0, p1, p2, p3, p4, p5 = _P

        def exp32(x):
            x = min(max(x, _LO), _HI)  # exp(-87) ~ 1.6e-38 (smallest normal); the recurrence needs no more
            k = np.floor(x * _LOG2E + _HALF)
            r = x - k * _LN2_HI - k * _LN2_LO
            p = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * (r * r) + r + _ONE
            # p * 2**k (numba passes the intrinsic's typingctx itself)
            return p * _bits_to_f32((np.int32(k) + np.int32(127)) << np.int32(23))  # type: ignore[call-arg]

        return exp32
    return lambda x: math.exp(x)


@njit(parallel=True, **_JIT)
def _fwd(u, delta, A, Bt, Ct, D, z, bias, has_D, has_z, has_bias, softplus, nblk, zero, tiny, out):  # pragma: no cover
    # u, delta, z, out: (b, d, L); A: (d, n); Bt, Ct: (b, L, n) (time-major); D, bias: (d,);
    # zero: 0 in the compute dtype (keeps float32 sums in float32); tiny: states below it are set to 0
    nb, nd, L = u.shape
    nn = A.shape[1]
    for k in prange(nblk):
        h = np.empty(nn, dtype=u.dtype)
        for b in range(k * nb // nblk, (k + 1) * nb // nblk):
            for d in range(nd):
                h[:] = zero
                Ad = A[d]
                for t in range(L):
                    dt = delta[b, d, t]
                    if has_bias:
                        dt += bias[d]
                    if softplus and dt <= 20.0:
                        dt = math.log1p(math.exp(dt))
                    du = dt * u[b, d, t]
                    Bbt, Cbt = Bt[b, t], Ct[b, t]
                    y = zero
                    for n in range(nn):
                        hn = _exp(dt * Ad[n]) * h[n] + du * Bbt[n]
                        hn = hn if abs(hn) >= tiny else zero
                        h[n] = hn
                        y += hn * Cbt[n]
                    if has_D:
                        y += D[d] * u[b, d, t]
                    if has_z:
                        zz = z[b, d, t]
                        y *= zz / (1.0 + math.exp(-zz))
                    out[b, d, t] = y


@njit(parallel=True, **_JIT)
def _bwd(u, delta, A, Bt, Ct, D, z, bias, has_D, has_z, has_bias, softplus, nblk, zero, tiny, gout,
         g_u, g_delta, g_A_part, g_Bt, g_Ct, g_D_part, g_z, g_bias_part):  # pragma: no cover
    # g_u, g_delta, g_z: (b, d, L); g_Bt, g_Ct: (b, L, n); *_part: (nblk, d[, n]) partial sums
    nb, nd, L = u.shape
    nn = A.shape[1]
    for k in prange(nblk):
        H = np.empty((L + 1, nn), dtype=u.dtype)  # H[t + 1] = h[t] of one (b, d); H[0] = 0
        dA = np.empty((L, nn), dtype=u.dtype)  # exp(dt[t] A)
        dts = np.empty(L, dtype=u.dtype)
        dsp = np.empty(L, dtype=u.dtype)  # d dt / d (delta + bias)
        gy = np.empty(L, dtype=u.dtype)  # d loss / d <h[t], C[t]>
        G = np.empty(nn, dtype=u.dtype)
        gA = g_A_part[k]
        for b in range(k * nb // nblk, (k + 1) * nb // nblk):
            for d in range(nd):
                Ad = A[d]
                H[0, :] = zero
                # recompute the forward of row (b, d), and the gradients of the D and z terms
                for t in range(L):
                    dt = delta[b, d, t]
                    if has_bias:
                        dt += bias[d]
                    s = 1.0
                    if softplus and dt <= 20.0:
                        e = math.exp(dt)
                        s = e / (1.0 + e)
                        dt = math.log1p(e)
                    dts[t] = dt
                    dsp[t] = s
                    du = dt * u[b, d, t]
                    Bbt, Cbt, Hp, Hn, dAt = Bt[b, t], Ct[b, t], H[t], H[t + 1], dA[t]
                    y = zero
                    for n in range(nn):
                        a = _exp(dt * Ad[n])
                        hn = a * Hp[n] + du * Bbt[n]
                        hn = hn if abs(hn) >= tiny else zero
                        dAt[n] = a
                        Hn[n] = hn
                        y += hn * Cbt[n]
                    go = gout[b, d, t]
                    uu = u[b, d, t]
                    if has_z:
                        zz = z[b, d, t]
                        sg = 1.0 / (1.0 + math.exp(-zz))
                        pre = y + (D[d] * uu if has_D else 0.0)
                        g_z[b, d, t] = go * pre * sg * (1.0 + zz * (1.0 - sg))
                        go = go * zz * sg
                    g_u[b, d, t] = go * D[d] if has_D else 0.0
                    if has_D:
                        g_D_part[k, d] += go * uu
                    gy[t] = go
                # reverse pass: G[t] = gy[t] C[t] + exp(dt[t+1] A) G[t+1]
                G[:] = zero  # carries exp(dt[t+1] A) * G[t+1]
                for t in range(L - 1, -1, -1):
                    go = gy[t]
                    uu = u[b, d, t]
                    dt = dts[t]
                    du = dt * uu
                    Bbt, Cbt, gBbt, gCbt = Bt[b, t], Ct[b, t], g_Bt[b, t], g_Ct[b, t]
                    Hp, Hn, dAt = H[t], H[t + 1], dA[t]
                    gdt = zero
                    gdu = zero
                    for n in range(nn):
                        Gn = go * Cbt[n] + G[n]
                        gCbt[n] += go * Hn[n]
                        Gd = Gn * dAt[n]
                        # with the loss at one position, dy = 0 elsewhere and G only decays: flush it
                        # to 0 before it turns subnormal (subnormal arithmetic is ~100x slower on x86)
                        Gd = Gd if abs(Gd) >= tiny else zero
                        gx = Gd * Hp[n]  # d loss / d (dt A); 0 at t = 0
                        gdt += gx * Ad[n]
                        gA[d, n] += gx * dt
                        gdu += Gn * Bbt[n]
                        gBbt[n] += Gn * du
                        G[n] = Gd
                    g_u[b, d, t] += gdu * dt
                    graw = (gdt + gdu * uu) * dsp[t]
                    g_delta[b, d, t] = graw
                    if has_bias:
                        g_bias_part[k, d] += graw


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _SelectiveScanNumba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        u_, delta_, A_ = u.to(dtype), delta.to(dtype), A.to(dtype)
        Bt, Ct = B.to(dtype).transpose(1, 2).contiguous(), C.to(dtype).transpose(1, 2).contiguous()
        empty = torch.zeros(1, dtype=dtype)
        D_ = D.to(dtype) if D is not None else empty
        z_ = z.to(dtype) if z is not None else empty.view(1, 1, 1)
        bias_ = delta_bias.to(dtype) if delta_bias is not None else empty
        flags = (D is not None, z is not None, delta_bias is not None, bool(delta_softplus))
        _set_threads()
        out = torch.empty(u.shape, dtype=dtype)
        nblk = _blocks(u.shape[0])
        _fwd(_np(u_), _np(delta_), _np(A_), _np(Bt), _np(Ct), _np(D_), _np(z_), _np(bias_), *flags, nblk,
             _zero(dtype), _tiny(dtype), out.numpy())
        ctx.save_for_backward(u_, delta_, A_, Bt, Ct, D_, z_, bias_)
        ctx.flags = flags
        ctx.in_dtypes = tuple(t.dtype if t is not None else None for t in (u, delta, A, B, C, D, z, delta_bias))
        return out.to(u.dtype)

    @staticmethod
    def backward(ctx, gout):
        u, delta, A, Bt, Ct, D, z, bias = ctx.saved_tensors
        dtype = u.dtype
        has_D, has_z, has_bias, _ = ctx.flags
        gout = gout.to(dtype).contiguous()
        nblk = _blocks(u.shape[0])
        nd, nn = A.shape
        g_u, g_delta = torch.empty_like(u), torch.empty_like(delta)
        g_Bt, g_Ct = torch.zeros_like(Bt), torch.zeros_like(Ct)
        g_A = torch.zeros(nblk, nd, nn, dtype=dtype)
        g_D = torch.zeros(nblk, nd, dtype=dtype)
        g_bias = torch.zeros(nblk, nd, dtype=dtype)
        g_z = torch.empty_like(z) if has_z else torch.zeros(1, 1, 1, dtype=dtype)
        _set_threads()
        _bwd(_np(u), _np(delta), _np(A), _np(Bt), _np(Ct), _np(D), _np(z), _np(bias), *ctx.flags, nblk,
             _zero(dtype), _tiny(dtype), _np(gout), g_u.numpy(), g_delta.numpy(), g_A.numpy(), g_Bt.numpy(),
             g_Ct.numpy(), g_D.numpy(), g_z.numpy(), g_bias.numpy())
        grads = [g_u, g_delta, g_A.sum(0), g_Bt.transpose(1, 2), g_Ct.transpose(1, 2),
                 g_D.sum(0) if has_D else None, g_z if has_z else None, g_bias.sum(0) if has_bias else None]
        out = [g.to(dt) if g is not None else None for g, dt in zip(grads, ctx.in_dtypes)]
        return (*out, None)


def _zero(dtype: torch.dtype) -> np.floating:
    return np.float64(0.0) if dtype == torch.float64 else np.float32(0.0)


def _tiny(dtype: torch.dtype) -> np.floating:
    """Values below this are flushed to 0 in the recurrences: far below anything float32 resolves
    next to the O(1e-10+) terms they are added to, and far above the subnormal range (1.2e-38)."""
    return np.float64(1e-280) if dtype == torch.float64 else np.float32(1e-30)


def _set_threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


def selective_scan_numba(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """mamba_ssm's ``selective_scan_fn`` on CPU tensors: u, delta, z (b, d, l); A (d, n); B, C (b, n, l);
    D, delta_bias (d,) -> (b, d, l). Computes in float32 (float64 for float64 inputs); threads as
    ``torch.get_num_threads()``."""
    if u.is_cuda:
        raise ValueError("selective_scan_numba runs on CPU tensors")
    return _SelectiveScanNumba.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
