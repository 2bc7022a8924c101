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
    from recwise.nn._scan_numba import selective_scan_numba

    IMPLS["numba"] = selective_scan_numba


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
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
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
