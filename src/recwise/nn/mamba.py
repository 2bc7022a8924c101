"""Mamba (Gu & Dao, 2023) in pure PyTorch, with the CUDA kernels of ``mamba_ssm`` when importable.

:class:`Mamba` has the constructor, the forward signature and the parameter names of
``mamba_ssm.Mamba`` (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``,
``out_proj``) and its initialisation, so state dicts move between the two.

The selective scan computes, per batch row ``b``, channel ``d`` and state ``n``::

    h[t] = exp(delta[t] * A) * h[t-1] + delta[t] * B[t] * u[t]
    y[t] = <h[t], C[t]> + D * u[t]          (then y *= silu(z) when z is given)

* :func:`selective_scan_ref` loops over time (the oracle, same semantics as
  ``mamba_ssm.ops.selective_scan_interface.selective_scan_ref``);
* :func:`selective_scan` runs the linear recurrence as a parallel prefix scan (Hillis-Steele
  doubling: ``ceil(log2 L)`` vectorised steps) inside a custom autograd function whose backward
  is the reverse-time scan of the same kind. Like mamba_ssm's kernel it keeps only its inputs for
  backward and recomputes the states there, a chunk of batch rows at a time, so the (B, D, L, N)
  tensors exist for one chunk only;
* ``selective_scan_numba`` (:mod:`recwise.nn._scan_numba`, needs numba: the ``fast`` extra) is a
  fused forward/backward CPU kernel, D, z, delta_bias and softplus included, that never builds a
  (B, D, L, N) tensor: the fastest choice on CPU.

:func:`scan_impl` picks one: mamba_ssm's CUDA kernel on CUDA tensors when importable, the numba
kernel on CPU when numba imports, else the parallel scan.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from recwise.errors import ConfigError, DependencyError

__all__ = ["Mamba", "cuda_scan_available", "linear_scan", "numba_scan_available", "scan_impl", "selective_scan",
           "selective_scan_ref"]

try:  # pragma: no cover - needs the compiled CUDA extension
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_selective_scan
except Exception:  # noqa: BLE001 - ImportError, or the extension failing to load
    _cuda_selective_scan = None


try:
    from recwise.nn._scan_numba import causal_conv1d_silu_numba as _numba_conv
    from recwise.nn._scan_numba import selective_scan_numba as _numba_selective_scan
    from recwise.nn._scan_numba import selective_scan_numba_v1 as _numba_v1_selective_scan
except ImportError:  # numba is optional (the ``fast`` extra)
    _numba_selective_scan = _numba_v1_selective_scan = _numba_conv = None  # type: ignore[assignment]


def cuda_scan_available() -> bool:
    return _cuda_selective_scan is not None and torch.cuda.is_available()


def numba_scan_available() -> bool:
    return _numba_selective_scan is not None


def _doubling_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h[t] = a[t] h[t-1] + b[t] along dim -2 (h[-1] = 0), in ceil(log2 L) steps.

    Called without autograd (inside :class:`_LinearScan`), so it updates private copies in place.
    """
    L = a.shape[-2]
    b = b.clone()
    a = a.clone() if L > 2 else a
    off = 1
    while off < L:
        b[..., off:, :] += a[..., off:, :] * b[..., :-off, :]  # the product is a new tensor: no overlap
        if off * 2 < L:
            a[..., off:, :] *= a[..., :-off, :].clone()
        off *= 2
    return b


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = _doubling_scan(a, b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, h = ctx.saved_tensors
        # G[t] = g[t] + a[t+1] G[t+1]: the same recurrence run backwards in time
        a_next = torch.cat([a[..., 1:, :], torch.zeros_like(a[..., :1, :])], dim=-2)
        G = _doubling_scan(a_next.flip(-2), g.flip(-2)).flip(-2)
        h_prev = torch.cat([torch.zeros_like(h[..., :1, :]), h[..., :-1, :]], dim=-2)
        return G * h_prev, G


def linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Parallel scan of ``h[t] = a[t] * h[t-1] + b[t]`` along dim -2 (time), h[-1] = 0."""
    return _LinearScan.apply(a, b)


def _f(t: torch.Tensor) -> torch.Tensor:
    """float32, or float64 for float64 inputs (mamba_ssm's reference always uses float32)."""
    return t if t.dtype == torch.float64 else t.float()


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus):  # noqa: ANN001, ANN202
    delta = _f(delta)
    if delta_bias is not None:
        delta = delta + _f(delta_bias)[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    return _f(u), delta, _f(A), _f(B), _f(C)


def _finish(y, u, D, z, dtype):  # noqa: ANN001, ANN202
    if D is not None:
        y = y + u * _f(D)[:, None]
    if z is not None:
        y = y * F.silu(_f(z))
    return y.to(dtype)


def selective_scan_ref(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """Sequential reference. u, delta, z: (b, d, l); A: (d, n); B, C: (b, n, l); D: (d,) -> y (b, d, l)."""
    dtype = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    bsz, d, L = u.shape
    h = u.new_zeros(bsz, d, A.shape[1])
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, :, t, None] * A) * h + (delta[:, :, t] * u[:, :, t])[..., None] * B[:, None, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    return _finish(torch.stack(ys, dim=2), u, D, z, dtype)


class _SelectiveScanCore(torch.autograd.Function):
    """y[b,d,l] = sum_n h[b,d,l,n] C[b,n,l] with h the scan of exp(delta A) and delta u B.

    Saves only its inputs and recomputes the (B, D, L, N) tensors in backward, as mamba_ssm's
    kernel does, in chunks of ``chunk`` batch rows: memory stays O(inputs + one chunk).
    """

    @staticmethod
    def forward(ctx, delta, A, B, C, u, chunk: int):  # noqa: ANN001, ANN205
        ctx.save_for_backward(delta, A, B, C, u)
        ctx.chunk = chunk
        out = []
        for s in range(0, u.shape[0], chunk):
            sl = slice(s, s + chunk)
            dA = torch.exp(delta[sl].unsqueeze(-1) * A[:, None, :])
            dBu = (delta[sl] * u[sl]).unsqueeze(-1) * B[sl].transpose(1, 2).unsqueeze(1)
            h = _doubling_scan(dA, dBu)
            out.append(torch.einsum("bdln,bln->bdl", h, C[sl].transpose(1, 2)))
        return torch.cat(out) if len(out) > 1 else out[0]

    @staticmethod
    def backward(ctx, gy):  # noqa: ANN001, ANN205
        delta, A, B, C, u = ctx.saved_tensors
        g_delta, g_B, g_C, g_u = (torch.empty_like(t) for t in (delta, B, C, u))
        g_A = torch.zeros_like(A)
        for s in range(0, u.shape[0], ctx.chunk):
            sl = slice(s, s + ctx.chunk)
            d, uu, Bt, Ct = delta[sl], u[sl], B[sl].transpose(1, 2), C[sl].transpose(1, 2)  # Bt, Ct: (b, l, n)
            dA = torch.exp(d.unsqueeze(-1) * A[:, None, :])  # (b, d, l, n)
            du = d * uu
            h = _doubling_scan(dA, du.unsqueeze(-1) * Bt.unsqueeze(1))
            g = gy[sl]
            g_C[sl] = torch.einsum("bdl,bdln->bnl", g, h)
            gh = g.unsqueeze(-1) * Ct.unsqueeze(1)  # dL/dh from y only
            a_next = torch.cat([dA[..., 1:, :], torch.zeros_like(dA[..., :1, :])], dim=-2)
            G = _doubling_scan(a_next.flip(-2), gh.flip(-2)).flip(-2)  # dL/dh total
            h_prev = torch.cat([torch.zeros_like(h[..., :1, :]), h[..., :-1, :]], dim=-2)
            gx = G * h_prev * dA  # dL/d(delta A)
            g_du = torch.einsum("bdln,bln->bdl", G, Bt)
            g_B[sl] = torch.einsum("bdln,bdl->bnl", G, du)
            g_delta[sl] = torch.einsum("bdln,dn->bdl", gx, A) + g_du * uu
            g_A += torch.einsum("bdln,bdl->dn", gx, d)
            g_u[sl] = g_du * d
        return g_delta, g_A, g_B, g_C, g_u, None


def selective_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False, chunk: int = 256,
) -> torch.Tensor:
    """Parallel selective scan; same arguments and result as :func:`selective_scan_ref`.

    ``chunk`` batch rows are scanned at a time; only the inputs are kept for backward.
    """
    dtype = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    y = _SelectiveScanCore.apply(delta, A, B, C, u, chunk)
    return _finish(y, u, D, z, dtype)


ScanImpl = Literal["auto", "numba", "numba_v1", "parallel", "sequential", "cuda"]


def scan_impl(impl: ScanImpl, on_cuda: bool):  # noqa: ANN201
    """The selective-scan function for ``impl``; ``auto``: CUDA kernel on CUDA tensors when
    mamba_ssm imports, the numba kernel on CPU when numba imports, else the parallel scan."""
    if impl == "auto":
        if on_cuda:
            impl = "cuda" if _cuda_selective_scan is not None else "parallel"
        else:
            impl = "numba" if _numba_selective_scan is not None else "parallel"
    if impl == "cuda":
        if _cuda_selective_scan is None:
            raise DependencyError("scan='cuda' needs mamba_ssm with its CUDA kernels: pip install mamba-ssm")
        return _cuda_selective_scan
    if impl in ("numba", "numba_v1"):
        if _numba_selective_scan is None:
            raise DependencyError(f"scan={impl!r} needs numba: pip install 'recwise[fast]'")
        return _numba_selective_scan if impl == "numba" else _numba_v1_selective_scan
    if impl == "sequential":
        return selective_scan_ref
    if impl == "parallel":
        return selective_scan
    raise ConfigError(f"option 'scan' must be auto, numba, numba_v1, parallel, sequential or cuda; got {impl!r}")


class Mamba(nn.Module):
    """One Mamba block, ``mamba_ssm.Mamba``'s interface: (B, L, d_model) -> (B, L, d_model).

    Parameters
    ----------
    d_model : int
    d_state : int, default 16
    d_conv : int, default 4
    expand : int, default 2
    dt_rank : int or "auto" (``ceil(d_model / 16)``)
    scan : "auto" | "numba" | "numba_v1" | "parallel" | "sequential" | "cuda", default "auto"
        ``auto`` uses mamba_ssm's CUDA kernel on CUDA tensors when importable, the numba kernel on
        CPU tensors when numba imports, else ``parallel`` (see :func:`scan_impl`). ``numba_v1`` is
        the first numba kernel, kept for before/after benchmarks; with ``numba`` the whole block
        runs in the (B, L, d_inner) layout (numba causal conv, no transposed copies), and with
        ``at`` the scan stops there.

    Example
    -------
    >>> m = Mamba(d_model=64, d_state=32, d_conv=4, expand=2)
    >>> m(torch.randn(2, 50, 64)).shape
    torch.Size([2, 50, 64])
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False,
                 scan: ScanImpl = "auto") -> None:
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.scan = scan
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_proj.bias._no_reinit = True  # type: ignore[attr-defined]  # as mamba_ssm
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True  # type: ignore[attr-defined]
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.D._no_weight_decay = True  # type: ignore[attr-defined]
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def _scan_fn(self, x: torch.Tensor):  # noqa: ANN202
        return scan_impl(self.scan, x.is_cuda)

    def forward(self, hidden_states: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states: (B, L, d_model) -> (B, L, d_model); with ``at`` (B,) positions, only the
        output at ``at[b]`` of each row b: (B, d_model) (the scan still runs over every step)."""
        scan = self._scan_fn(hidden_states)
        if scan is _numba_selective_scan and scan is not None:
            y = self._forward_bld(hidden_states, scan, at)
        else:
            y = self._forward_bdl(hidden_states, scan)
        if at is not None:
            y = y[torch.arange(y.shape[0], device=y.device), at]
        return self.out_proj(y)

    def _forward_bld(self, h: torch.Tensor, scan, at: torch.Tensor | None) -> torch.Tensor:  # noqa: ANN001
        """Every (B, L, d_inner) tensor stays (B, L, d_inner)-contiguous, the numba kernels' layout:
        x and z come from two GEMMs on the halves of in_proj's weight, the causal conv + SiLU is a
        numba kernel, and the scan takes and returns transposed views (no copies)."""
        di, W = self.d_inner, self.in_proj.weight
        bx, bz = (self.in_proj.bias[:di], self.in_proj.bias[di:]) if self.in_proj.bias is not None else (None, None)
        x = F.linear(h, W[:di], bx)
        z = F.linear(h, W[di:], bz)
        x = _numba_conv(x, self.conv1d.weight, self.conv1d.bias)
        x_dbl = self.x_proj(x)  # (B, L, dt_rank + 2N)
        dt, Bm, Cm = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = dt @ self.dt_proj.weight.t()  # (B, L, d_inner), bias added in the scan
        A = -torch.exp(self.A_log.float())
        y = scan(x.transpose(1, 2), dt.transpose(1, 2), A, Bm.transpose(1, 2), Cm.transpose(1, 2), self.D.float(),
                 z=z.transpose(1, 2), delta_bias=self.dt_proj.bias.float(), delta_softplus=True, last=at)
        return y.transpose(1, 2)  # (B, L, d_inner), contiguous

    def _forward_bdl(self, hidden_states: torch.Tensor, scan) -> torch.Tensor:  # noqa: ANN001
        """mamba_ssm's (B, d_inner, L) layout (CUDA kernel, the reference and parallel scans, numba_v1)."""
        L = hidden_states.shape[1]
        xz = self.in_proj(hidden_states).transpose(1, 2)  # (B, 2*d_inner, L)
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :L])  # causal depthwise conv
        x_dbl = self.x_proj(x.transpose(1, 2))  # (B, L, dt_rank + 2N)
        dt, Bm, Cm = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # (B, d_inner, L), bias added in the scan
        A = -torch.exp(self.A_log.float())
        y = scan(x.contiguous(), dt.contiguous(), A, Bm.transpose(1, 2).contiguous(),
                 Cm.transpose(1, 2).contiguous(), self.D.float(), z=z.contiguous(),
                 delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        return y.transpose(1, 2)
