"""Selective scan on CPU: the sequential reference, the parallel (Hillis-Steele) scan and the fused
numba kernel, forward and forward + backward.

Shapes are those of SIGMA / Mamba4Rec's block (d_model 64, expand 2 -> d_inner 128, d_state 32)
at sequence length 50 (Amazon, ML-100K) and 200 (ML-1M), with D, z, delta_bias and softplus as the
Mamba block calls it. Each timing is the median of ``--repeats`` runs of forward + backward of
``y.sum()`` after one warm-up run (which also compiles the numba kernels, or loads them from the
on-disk cache); all implementations get the same inputs and their outputs are compared with the
reference's. Ratios are the reference's time over each implementation's.

    .venv/bin/python benchmarks/selective_scan.py                 # batch 64, lengths 50 and 200
    .venv/bin/python benchmarks/selective_scan.py --batch 256 --lengths 50 --threads 1
    .venv/bin/python benchmarks/selective_scan.py --impls numba,parallel   # skip the slow reference
    .venv/bin/python benchmarks/selective_scan.py --yardstick --batch 4096 --lengths 50 --threads 1

``--yardstick``: the numba kernels (``numba``; ``numba_v1``, the first one) in GFLOP/s against a
matmul of the same FLOPs on the same threads, the machine's practical FLOP limit. FLOPs follow
VMamba's count for the selective scan (``flops_selective_scan_fn``): 9 B L D N per forward (the
exp counted as one), and backward = 2 x forward, so 27 B L D N for forward + backward. The matmul is
(B L, D) @ (D, 4.5 N): 2 B L D (4.5 N) = 9 B L D N. Ratio = scan time / matmul time (1 = at the
limit). The kernel gets (B, L, D)-contiguous inputs as the Mamba block passes them.

The exp floor: every state update needs one exp(dt A) (B L D N of them per forward; the backward
recomputes them). ``exp floor`` is the time torch's vectorised exp alone takes for that many values
(a 256 KB buffer, resident in cache, exponentiated in place of the scan's work), as a multiple of the
matmul: no kernel that computes exp(dt A) per update can have a forward ratio below it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from recwise.nn.mamba import numba_scan_available, selective_scan, selective_scan_ref

IMPLS = {"sequential": selective_scan_ref, "parallel": selective_scan}
if numba_scan_available():
    from recwise.nn._scan_numba import selective_scan_numba, selective_scan_numba_v1

    IMPLS["numba"] = selective_scan_numba
    IMPLS["numba_v1"] = selective_scan_numba_v1


def yardstick(b: int, d: int, L: int, n: int, threads: int, repeats: int,
              impls: tuple[str, ...] = ("numba_v1", "numba")) -> list[dict]:
    """Print and return each impl's forward and forward + backward GFLOP/s next to a matmul of the
    same FLOPs (see the module docstring), all at ``threads`` threads, median of ``repeats``."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    # (b, l, d)-contiguous tensors seen as (b, d, l), as recwise's Mamba block passes them
    u, delta, z = (torch.randn(b, L, d, generator=g).transpose(1, 2) for _ in range(3))
    delta = delta * 0.5
    A = -torch.rand(d, n, generator=g) * 2 - 0.1
    B, C = (torch.randn(b, L, n, generator=g).transpose(1, 2) for _ in range(2))
    D, bias = torch.randn(d, generator=g), torch.randn(d, generator=g) * 0.1
    args = [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]
    flops_fwd = 9 * b * L * d * n
    x, w = torch.randn(b * L, d, generator=g), torch.randn(d, round(4.5 * n), generator=g)
    mm = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        x @ w
        mm.append(time.perf_counter() - t0)
    t_mm = statistics.median(mm[1:])
    gf_mm = 2 * b * L * d * round(4.5 * n) / t_mm / 1e9
    t_exp = exp_floor(b * L * d * n, repeats)
    print(f"exp floor: {b * L * d * n / 1e6:.0f}M exps in {t_exp * 1e3:.1f} ms = {t_exp / t_mm:.2f}x the matmul "
          f"({b * L * d * n / t_exp / 1e9:.1f} G exp/s)")
    print(f"{'impl':<9} {'fwd ms':>8} {'f+b ms':>8} {'fwd GFLOP/s':>11} {'f+b GFLOP/s':>11} {'matmul GFLOP/s':>14} "
          f"{'fwd / matmul':>12} {'f+b / 3 matmuls':>15}")
    rows = []
    for impl in impls:
        f, t, _ = time_one(IMPLS[impl], args, repeats, time.perf_counter)
        row = {"impl": impl, "batch": b, "d_inner": d, "L": L, "d_state": n, "threads": threads, "fwd_ms": f * 1e3,
               "fwd_bwd_ms": t * 1e3, "fwd_gflops": flops_fwd / f / 1e9, "fwd_bwd_gflops": 3 * flops_fwd / t / 1e9,
               "matmul_gflops": gf_mm, "fwd_over_matmul": f / t_mm, "fwd_bwd_over_matmul": t / (3 * t_mm),
               "exp_floor_ms": t_exp * 1e3, "exp_floor_over_matmul": t_exp / t_mm}
        rows.append(row)
        print(f"{impl:<9} {row['fwd_ms']:>8.1f} {row['fwd_bwd_ms']:>8.1f} {row['fwd_gflops']:>11.1f} "
              f"{row['fwd_bwd_gflops']:>11.1f} {gf_mm:>14.1f} {row['fwd_over_matmul']:>11.1f}x "
              f"{row['fwd_bwd_over_matmul']:>14.1f}x", flush=True)
    return rows


def exp_floor(count: int, repeats: int) -> float:
    """Seconds torch's exp takes for ``count`` float32 values (in-place over a cache-resident buffer)."""
    x = torch.rand(1 << 16) * -4.0
    out = torch.empty_like(x)
    reps = max(1, count // x.numel())
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.exp(x, out=out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * count / (reps * x.numel())


def inputs(b: int, d: int, L: int, n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(b, d, L, generator=g)
    delta = torch.randn(b, d, L, generator=g) * 0.5
    A = -torch.rand(d, n, generator=g) * 2 - 0.1
    B = torch.randn(b, n, L, generator=g)
    C = torch.randn(b, n, L, generator=g)
    D = torch.randn(d, generator=g)
    z = torch.randn(b, d, L, generator=g)
    bias = torch.randn(d, generator=g) * 0.1
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]


def time_one(fn, args: list[torch.Tensor], repeats: int, clock) -> tuple[float, float, torch.Tensor]:  # noqa: ANN001
    fwd, tot = [], []
    y = None
    for _ in range(repeats + 1):  # first run warms up
        for a in args:
            a.grad = None
        t0 = clock()
        y = fn(*args[:7], delta_bias=args[7], delta_softplus=True)
        t1 = clock()
        y.sum().backward()
        t2 = clock()
        fwd.append(t1 - t0)
        tot.append(t2 - t0)
    return statistics.median(fwd[1:]), statistics.median(tot[1:]), y.detach()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--d-inner", type=int, default=128)
    ap.add_argument("--d-state", type=int, default=32)
    ap.add_argument("--lengths", default="50,200")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated, from {', '.join(IMPLS)}")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: this process's CPU time (all its threads), which a "
                         "loaded shared machine inflates less")
    ap.add_argument("--yardstick", action="store_true", help="numba kernels against a matmul of the same FLOPs")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.yardstick:
        rows = [r for L in args.lengths.split(",") for r in
                yardstick(args.batch, args.d_inner, int(L), args.d_state, args.threads, args.repeats)]
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"args": vars(args), "rows": rows}, fh, indent=1)
        return 0
    torch.set_num_threads(args.threads)
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    for i in impls:
        if i not in IMPLS:
            ap.error(f"unknown implementation {i!r}; available: {', '.join(IMPLS)}")
    rows = []
    base = impls[0]
    print(f"batch {args.batch}, d_inner {args.d_inner}, d_state {args.d_state}, {args.threads} threads, "
          f"{args.clock} clock, median of {args.repeats}; ratios: {base}'s time / each one's")
    print(f"{'L':>5} {'impl':<11} {'fwd ms':>9} {'fwd+bwd ms':>11} {'fwd ratio':>10} {'f+b ratio':>10} "
          f"{'max |diff|':>11}")
    for L in [int(x) for x in args.lengths.split(",")]:
        a = inputs(args.batch, args.d_inner, L, args.d_state)
        clock = time.perf_counter if args.clock == "wall" else time.process_time
        res = {i: time_one(IMPLS[i], a, args.repeats, clock) for i in impls}
        f0, t0, y0 = res[base]
        for impl, (f, t, y) in res.items():
            diff = float((y - y0).abs().max())
            print(f"{L:>5} {impl:<11} {f * 1e3:>9.1f} {t * 1e3:>11.1f} {f0 / f:>9.2f}x {t0 / t:>9.2f}x {diff:>11.2e}")
            rows.append({"L": L, "impl": impl, "fwd_ms": f * 1e3, "fwd_bwd_ms": t * 1e3, "fwd_ratio": f0 / f,
                         "fwd_bwd_ratio": t0 / t, "max_abs_diff_vs_" + base: diff})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
