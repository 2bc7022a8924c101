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

__all__ = ["selective_scan_numba", "selective_scan_numba_v1"]

# numba's default threading layer here is OpenMP, whose pool next to torch's costs several ms of
# CPU per kernel call (measured: 7 ms vs 0.6 ms for a batch-4 forward on a loaded 2-core VM); the
# kernels split their work into a few coarse blocks, for which the workqueue layer is enough.
# Applies when the layer is not chosen already (NUMBA_THREADING_LAYER) and no parallel numba code ran.
# workqueue does not allow concurrent kernel calls from several Python threads: set
# NUMBA_THREADING_LAYER=omp (or tbb) for that.
# (numba.config fills its attributes at import time: mypy does not see them)
if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":  # type: ignore[attr-defined]
    numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]

# 512-bit vectors on AVX-512 cores: LLVM's tuning for them prefers 256-bit ones ("prefer-256-bit"),
# which halves the work per instruction of the kernels' channel loops (measured here: forward 1.35x,
# backward 1.15x faster with 512). Applies when NUMBA_CPU_FEATURES is not set and numba has compiled
# nothing yet in this process (its code generator reads the features once); other numba code in the
# process then prefers 512-bit vectors too, which changes no result beyond float reassociation.
if numba.config.CPU_FEATURES is None:  # type: ignore[attr-defined]
    import llvmlite.binding as _llvm

    _host = _llvm.get_host_cpu_features()
    if _host.get("avx512f"):
        numba.config.CPU_FEATURES = _host.flatten() + ",-prefer-256-bit"  # type: ignore[attr-defined]

_FM = {"reassoc", "contract", "nsz", "arcp"}  # lets LLVM vectorise the loops over states (no nnan/ninf)
_JIT: dict[str, Any] = {"nogil": True, "cache": True, "fastmath": _FM, "error_model": "numpy"}


def _blocks(nb: int) -> int:
    """Blocks of batch rows for ``nb`` rows: 4 per thread, threads as ``torch.get_num_threads()``
    (set here, so the blocks -- and the order of the per-block gradient sums -- depend on the
    current thread count only)."""
    _set_threads()
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


@intrinsic
def _f32_to_bits(typingctx, x):  # pragma: no cover - compiled
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


_LQ = tuple(_F(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                             1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                             3.3333331174e-1))  # Cephes logf, |rel err| < 2e-7
_SQRTH = _F(0.707106781186547524)


def _log1p(x):  # pragma: no cover - replaced in compiled code
    return math.log1p(x)


@overload(_log1p, inline="always", jit_options={"fastmath": _FM})
def _log1p_overload(x):  # pragma: no cover - compiled
    if x == types.float32:
        q0, q1, q2, q3, q4, q5, q6, q7, q8 = _LQ

        def log1p32(x):  # x >= 0
            w = _ONE + x
            bits: Any = _f32_to_bits(w)  # type: ignore[call-arg]
            e = ((bits >> np.int32(23)) & np.int32(255)) - np.int32(126)
            m = _bits_to_f32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F000000))  # in [0.5, 1)
            small = m < _SQRTH
            ef = _F(e) - (_ONE if small else _F(0.0))
            m = (m + m - _ONE) if small else (m - _ONE)
            zz = m * m
            y = ((((((((q0 * m + q1) * m + q2) * m + q3) * m + q4) * m + q5) * m + q6) * m + q7) * m + q8) * m * zz
            y = y + _LN2_LO * ef - _HALF * zz
            lw = m + y + _LN2_HI * ef  # log(w)
            # log1p(x) = log(w) * x / (w - 1): exact rounding of 1 + x compensated (Goldberg)
            wm1 = w - _ONE
            return lw * (x / wm1) if wm1 != _F(0.0) else x

        return log1p32
    return lambda x: math.log1p(x)


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


class _SelectiveScanNumbaV1(torch.autograd.Function):
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


def selective_scan_numba_v1(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """mamba_ssm's ``selective_scan_fn`` on CPU tensors: u, delta, z (b, d, l); A (d, n); B, C (b, n, l);
    D, delta_bias (d,) -> (b, d, l). Computes in float32 (float64 for float64 inputs); threads as
    ``torch.get_num_threads()``."""
    if u.is_cuda:
        raise ValueError("selective_scan_numba runs on CPU tensors")
    return _SelectiveScanNumbaV1.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


# --- the kernel: channel-vectorised (default) -----------------------------------------------------
# Layout (b, l, d) for u, delta, z and the output, (n, d) for A: the innermost loop runs over a block
# of up to ``_DB`` channels, contiguous in memory, with the state n and the time t outside it. B[t, n]
# and C[t, n] are scalars there, so every inner iteration is the same few vector instructions and
# the forward needs no horizontal sums. softplus, D * u and the silu(z) gate are computed in the
# kernel too (a vectorised exp and log1p), so no (b, l, d) temporaries are written to memory.

_DB = 64  # channels per block: the backward keeps (L + 1) x n x _DB states and L x n x _DB decays


@njit(inline="always", **_JIT)
def _prep(delta, u, bias, has_bias, softplus, d0, w, zero, dl, du, ds):  # pragma: no cover - compiled
    # dl = dt = softplus(delta + bias), du = dt * u, ds = d dt / d(delta + bias), over one block row
    one = zero + _ONE  # 1 in the compute dtype (a float literal would be float64)
    for j in range(w):
        x = delta[j] + (bias[d0 + j] if has_bias else zero)
        s = one
        if softplus and x <= 20.0:
            e = _exp(x)
            s = e / (one + e)
            x = _log1p(e)
        dl[j] = x
        du[j] = x * u[j]
        ds[j] = s


@njit(parallel=True, **_JIT)
def _fwd2(u, delta, At, Bt, Ct, D, z, bias, has_D, has_z, has_bias, softplus, nblk, db, zero, tiny, t_end,
          out):  # pragma: no cover - compiled
    # u, delta, z, out: (b, L, d); At: (n, d); Bt, Ct: (b, L, n); D, bias: (d,); out[b, t] for t > t_end[b]: 0
    nb, L, nd = u.shape
    nn = At.shape[0]
    one = zero + _ONE
    for k in prange(nblk):
        h = np.empty((nn, db), dtype=u.dtype)
        dl = np.empty(db, dtype=u.dtype)
        du = np.empty(db, dtype=u.dtype)
        ds = np.empty(db, dtype=u.dtype)
        ya = np.empty(db, dtype=u.dtype)
        for b in range(k * nb // nblk, (k + 1) * nb // nblk):
            te = t_end[b]
            out[b, te + 1:, :] = zero
            for d0 in range(0, nd, db):
                w = min(db, nd - d0)
                h[:, :] = zero
                for t in range(te + 1):
                    ut = u[b, t, d0:d0 + w]
                    _prep(delta[b, t, d0:d0 + w], ut, bias, has_bias, softplus, d0, w, zero, dl, du, ds)
                    for j in range(w):
                        ya[j] = zero
                    for n in range(nn):
                        bn, cn = Bt[b, t, n], Ct[b, t, n]
                        An, hn = At[n, d0:d0 + w], h[n]
                        for j in range(w):
                            v = _exp(dl[j] * An[j]) * hn[j] + du[j] * bn
                            v = v if abs(v) >= tiny else zero
                            hn[j] = v
                            ya[j] += v * cn
                    ot = out[b, t, d0:d0 + w]
                    for j in range(w):
                        y = ya[j] + (D[d0 + j] * ut[j] if has_D else zero)
                        if has_z:
                            zz = z[b, t, d0 + j]
                            y *= zz / (one + _exp(-zz))
                        ot[j] = y


@njit(parallel=True, **_JIT)
def _bwd2(u, delta, At, Bt, Ct, D, z, bias, has_D, has_z, has_bias, softplus, nblk, db, zero, tiny, gout,
          g_u, g_delta, g_At_part, g_Bt, g_Ct, g_D_part, g_z, g_bias_part):  # pragma: no cover - compiled
    # gout, g_u, g_delta, g_z: (b, L, d); g_At_part: (nblk, n, d), g_D_part, g_bias_part: (nblk, d),
    # zero-filled; g_Bt, g_Ct: (b, L, n). Steps after the last t with a nonzero gout[b, t] contribute
    # exactly 0: they are skipped (their gradients set to 0), so are rows with gout[b] = 0.
    nb, L, nd = u.shape
    nn = At.shape[0]
    one = zero + _ONE
    for k in prange(nblk):
        H = np.empty((L + 1, nn, db), dtype=u.dtype)  # H[t + 1] = h[t]; H[0] = 0
        E = np.empty((L, nn, db), dtype=u.dtype)  # exp(dt[t] A)
        dl = np.empty((L, db), dtype=u.dtype)
        du = np.empty((L, db), dtype=u.dtype)
        ds = np.empty((L, db), dtype=u.dtype)
        ya = np.empty((L, db), dtype=u.dtype)  # <h[t], C[t]>
        G = np.empty((nn, db), dtype=u.dtype)  # exp(dt[t+1] A) * dL/dh[t+1]
        gdt = np.empty(db, dtype=u.dtype)
        gdu = np.empty(db, dtype=u.dtype)
        gA = g_At_part[k]
        for b in range(k * nb // nblk, (k + 1) * nb // nblk):
            te = L - 1
            while te >= 0 and not np.any(gout[b, te] != zero):
                te -= 1
            g_u[b, te + 1:, :] = zero
            g_delta[b, te + 1:, :] = zero
            if has_z:
                g_z[b, te + 1:, :] = zero
            g_Bt[b, :, :] = zero
            g_Ct[b, :, :] = zero
            if te < 0:
                continue
            for d0 in range(0, nd, db):
                w = min(db, nd - d0)
                H[0, :, :] = zero
                for t in range(te + 1):  # recompute the forward
                    _prep(delta[b, t, d0:d0 + w], u[b, t, d0:d0 + w], bias, has_bias, softplus, d0, w, zero,
                          dl[t], du[t], ds[t])
                    dlt, dut, yat = dl[t], du[t], ya[t]
                    for j in range(w):
                        yat[j] = zero
                    for n in range(nn):
                        bn, cn = Bt[b, t, n], Ct[b, t, n]
                        An, hp, hn, en = At[n, d0:d0 + w], H[t, n], H[t + 1, n], E[t, n]
                        for j in range(w):
                            a = _exp(dlt[j] * An[j])
                            v = a * hp[j] + dut[j] * bn
                            v = v if abs(v) >= tiny else zero
                            en[j] = a
                            hn[j] = v
                            yat[j] += v * cn
                G[:, :] = zero
                for t in range(te, -1, -1):  # reverse: dL/dh[t] = gy[t] C[t] + exp(dt[t+1] A) dL/dh[t+1]
                    dlt, dut, yat = dl[t], du[t], ya[t]
                    ut, got = u[b, t, d0:d0 + w], gout[b, t, d0:d0 + w]
                    gut, gzt = g_u[b, t, d0:d0 + w], g_z[b, t, d0:d0 + w]
                    for j in range(w):  # the D and z terms; yat becomes dL/d<h[t], C[t]>
                        go = got[j]
                        gut[j] = zero
                        if has_z:
                            zz = z[b, t, d0 + j]
                            sg = one / (one + _exp(-zz))
                            pre = yat[j] + (D[d0 + j] * ut[j] if has_D else zero)
                            gzt[j] = go * pre * sg * (one + zz * (one - sg))
                            go = go * zz * sg
                        if has_D:
                            gut[j] = go * D[d0 + j]
                            g_D_part[k, d0 + j] += go * ut[j]
                        yat[j] = go
                        gdt[j] = zero
                        gdu[j] = zero
                    for n in range(nn):
                        bn, cn = Bt[b, t, n], Ct[b, t, n]
                        An, gAn, Gn = At[n, d0:d0 + w], gA[n, d0:d0 + w], G[n]
                        hp, hn, en = H[t, n], H[t + 1, n], E[t, n]
                        sc = zero
                        sb = zero
                        for j in range(w):
                            gy = yat[j]
                            g = gy * cn + Gn[j]  # dL/dh[t]
                            sc += gy * hn[j]
                            sb += g * dut[j]
                            gdu[j] += g * bn
                            gd = g * en[j]
                            # with the loss at one position, gy = 0 elsewhere and G only decays: flush
                            # it to 0 before it turns subnormal (~100x slower arithmetic on x86)
                            gd = gd if abs(gd) >= tiny else zero
                            gx = gd * hp[j]  # dL/d(dt A)
                            gdt[j] += gx * An[j]
                            gAn[j] += gx * dlt[j]
                            Gn[j] = gd
                        g_Ct[b, t, n] += sc
                        g_Bt[b, t, n] += sb
                    gdl, dst = g_delta[b, t, d0:d0 + w], ds[t]
                    for j in range(w):
                        gut[j] += gdu[j] * dlt[j]
                        graw = (gdt[j] + gdu[j] * ut[j]) * dst[j]
                        gdl[j] = graw
                        if has_bias:
                            g_bias_part[k, d0 + j] += graw


def _bld(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(b, x, l) -> a contiguous (b, l, x) tensor in ``dtype`` (free for a transposed (b, l, x) tensor)."""
    return t.to(dtype).transpose(1, 2).contiguous()


class _SelectiveScanNumba(torch.autograd.Function):
    """All tensors (b, l, d) / (b, l, n) contiguous in the compute dtype; A (n, d)."""

    @staticmethod
    def forward(ctx: Any, u, delta, At, Bt, Ct, D, z, bias, flags, t_end):
        nblk = _blocks(u.shape[0])
        _set_threads()
        out = torch.empty_like(u)
        _fwd2(u.numpy(), delta.numpy(), At.numpy(), Bt.numpy(), Ct.numpy(), D.numpy(), z.numpy(), bias.numpy(), *flags,
              nblk, _DB, _zero(u.dtype), _tiny(u.dtype), t_end.numpy(), out.numpy())
        ctx.save_for_backward(u, delta, At, Bt, Ct, D, z, bias)
        ctx.flags = flags
        return out

    @staticmethod
    def backward(ctx: Any, gout):
        u, delta, At, Bt, Ct, D, z, bias = ctx.saved_tensors
        has_D, has_z, has_bias, _ = ctx.flags
        dtype = u.dtype
        gout = gout.to(dtype).contiguous()
        nblk = _blocks(u.shape[0])
        nn, nd = At.shape
        # written whole by the kernel (no zero-filling pass: fresh large blocks cost page faults)
        g_u, g_delta = torch.empty_like(u), torch.empty_like(delta)
        g_z = torch.empty_like(z) if has_z else torch.zeros(1, 1, 1, dtype=dtype)
        g_Bt, g_Ct = torch.empty_like(Bt), torch.empty_like(Ct)
        g_At = torch.zeros(nblk, nn, nd, dtype=dtype)
        g_D = torch.zeros(nblk, nd, dtype=dtype)
        g_bias = torch.zeros(nblk, nd, dtype=dtype)
        _set_threads()
        _bwd2(u.numpy(), delta.numpy(), At.numpy(), Bt.numpy(), Ct.numpy(), D.numpy(), z.numpy(), bias.numpy(),
              *ctx.flags, nblk, _DB, _zero(dtype), _tiny(dtype), gout.numpy(), g_u.numpy(),
              g_delta.numpy(), g_At.numpy(), g_Bt.numpy(), g_Ct.numpy(), g_D.numpy(), g_z.numpy(), g_bias.numpy())
        return (g_u, g_delta, g_At.sum(0), g_Bt, g_Ct, g_D.sum(0) if has_D else None, g_z if has_z else None,
                g_bias.sum(0) if has_bias else None, None, None)


def selective_scan_numba(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, *, last: torch.Tensor | None = None,
) -> torch.Tensor:
    """mamba_ssm's ``selective_scan_fn`` on CPU tensors: u, delta, z (b, d, l); A (d, n); B, C (b, n, l);
    D, delta_bias (d,) -> (b, d, l). Computes in float32 (float64 for float64 inputs); threads as
    ``torch.get_num_threads()``.

    ``last`` (b,) int: the last step whose output row ``b`` needs; later steps are not computed
    (their output is 0). The backward skips, per row, the steps after the last nonzero output
    gradient by itself (they contribute exactly 0).

    The kernel works in the (b, l, d) layout: u, delta and z that are transposed views of
    (b, l, d)-contiguous tensors (as :class:`~recwise.nn.mamba.Mamba` passes them), and B, C of
    (b, l, n) ones, are used without a copy, and the result is such a view too."""
    if u.is_cuda:
        raise ValueError("selective_scan_numba runs on CPU tensors")
    dtype = u.dtype
    cd = torch.float64 if dtype == torch.float64 else torch.float32
    empty = torch.zeros(1, dtype=cd)
    flags = (D is not None, z is not None, delta_bias is not None, bool(delta_softplus))
    L = u.shape[-1]
    if last is None:
        t_end = torch.full((u.shape[0],), L - 1, dtype=torch.int64)
    else:
        t_end = last.to(torch.int64).clamp(-1, L - 1)
    out = _SelectiveScanNumba.apply(
        _bld(u, cd), _bld(delta, cd), A.to(cd).t().contiguous(), _bld(B, cd), _bld(C, cd),
        D.to(cd) if D is not None else empty, _bld(z, cd) if z is not None else empty.view(1, 1, 1),
        delta_bias.to(cd) if delta_bias is not None else empty, flags, t_end.contiguous())
    return out.transpose(1, 2).to(dtype)


# --- Mamba's causal depthwise conv + SiLU in the (b, l, d) layout --------------------------------


@njit(parallel=True, **_JIT)
def _conv_fwd(x, w, bias, nblk, zero, out):  # pragma: no cover - compiled
    # x, out: (b, L, d); w: (K, d); out[t] = silu(bias + sum_i w[i] x[t - K + 1 + i])
    nb, L, nd = x.shape
    K = w.shape[0]
    one = zero + _ONE
    for k in prange(nblk):
        for b in range(k * nb // nblk, (k + 1) * nb // nblk):
            for t in range(L):
                ot = out[b, t]
                for j in range(nd):
                    ot[j] = bias[j]
                for i in range(max(0, K - 1 - t), K):
                    xs, wi = x[b, t - K + 1 + i], w[i]
                    for j in range(nd):
                        ot[j] += wi[j] * xs[j]
                for j in range(nd):
                    p = ot[j]
                    ot[j] = p / (one + _exp(-p))


@njit(parallel=True, **_JIT)
def _conv_bwd(x, w, bias, nblk, zero, gout, g_x, g_w_part, g_b_part):  # pragma: no cover - compiled
    # g_x: (b, L, d) zero-filled; g_w_part: (nblk, K, d); g_b_part: (nblk, d)
    nb, L, nd = x.shape
    K = w.shape[0]
    one = zero + _ONE
    for k in prange(nblk):
        gp = np.empty(nd, dtype=x.dtype)
        gw, gb = g_w_part[k], g_b_part[k]
        for b in range(k * nb // nblk, (k + 1) * nb // nblk):
            for t in range(L):
                i0 = max(0, K - 1 - t)
                for j in range(nd):
                    gp[j] = bias[j]
                for i in range(i0, K):
                    xs, wi = x[b, t - K + 1 + i], w[i]
                    for j in range(nd):
                        gp[j] += wi[j] * xs[j]
                got = gout[b, t]
                for j in range(nd):  # d silu(p) / dp = s (1 + p (1 - s))
                    p = gp[j]
                    s = one / (one + _exp(-p))
                    g = got[j] * s * (one + p * (one - s))
                    gp[j] = g
                    gb[j] += g
                for i in range(i0, K):
                    xs, wi, gxs, gwi = x[b, t - K + 1 + i], w[i], g_x[b, t - K + 1 + i], gw[i]
                    for j in range(nd):
                        gxs[j] += gp[j] * wi[j]
                        gwi[j] += gp[j] * xs[j]


class _CausalConvSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, w, bias):
        nblk = _blocks(x.shape[0])
        _set_threads()
        out = torch.empty_like(x)
        _conv_fwd(x.numpy(), w.numpy(), bias.numpy(), nblk, _zero(x.dtype), out.numpy())
        ctx.save_for_backward(x, w, bias)
        return out

    @staticmethod
    def backward(ctx: Any, gout):
        x, w, bias = ctx.saved_tensors
        nblk = _blocks(x.shape[0])
        g_x = torch.zeros_like(x)
        g_w = torch.zeros(nblk, *w.shape, dtype=x.dtype)
        g_b = torch.zeros(nblk, *bias.shape, dtype=x.dtype)
        _set_threads()
        _conv_bwd(x.numpy(), w.numpy(), bias.numpy(), nblk, _zero(x.dtype), gout.to(x.dtype).contiguous().numpy(),
                  g_x.numpy(), g_w.numpy(), g_b.numpy())
        return g_x, g_w.sum(0), g_b.sum(0)


def causal_conv1d_silu_numba(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``silu(conv1d(x.transpose(1, 2), weight, bias, padding=K - 1, groups=d)[..., :L]).transpose(1, 2)``,
    Mamba's causal depthwise convolution, on x (b, l, d) -> (b, l, d); weight (d, 1, K), bias (d,)."""
    dtype = x.dtype
    cd = torch.float64 if dtype == torch.float64 else torch.float32
    w = weight.to(cd)[:, 0, :].t().contiguous()  # (K, d)
    b = bias.to(cd) if bias is not None else torch.zeros(x.shape[-1], dtype=cd)
    return _CausalConvSiLU.apply(x.to(cd).contiguous(), w, b).to(dtype)
