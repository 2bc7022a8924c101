"""Selective scan on CPU: recwise's parallel scan vs the sequential reference, forward + backward.

Shapes are those of SIGMA / Mamba4Rec's block (d_model 64, expand 2 -> d_inner 128, d_state 32)
at sequence length 50 (Amazon, ML-100K) and 200 (ML-1M). Each timing is the median of
``--repeats`` runs of forward + backward of ``y.sum()``; both implementations get the same inputs
and their outputs are compared.

    .venv/bin/python benchmarks/selective_scan.py                 # batch 64, lengths 50 and 200
    .venv/bin/python benchmarks/selective_scan.py --batch 256 --lengths 50 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from recwise.nn.mamba import selective_scan, selective_scan_ref


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


def time_one(fn, args: list[torch.Tensor], repeats: int) -> tuple[float, float, torch.Tensor]:  # noqa: ANN001
    fwd, tot = [], []
    y = None
    for _ in range(repeats + 1):  # first run warms up
        for a in args:
            a.grad = None
        t0 = time.perf_counter()
        y = fn(*args[:7], delta_bias=args[7], delta_softplus=True)
        t1 = time.perf_counter()
        y.sum().backward()
        t2 = time.perf_counter()
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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"batch {args.batch}, d_inner {args.d_inner}, d_state {args.d_state}, {args.threads} threads, "
          f"median of {args.repeats}")
    print(f"{'L':>5} {'impl':<11} {'fwd ms':>9} {'fwd+bwd ms':>11} {'speed-up':>9} {'max |diff|':>11}")
    for L in [int(x) for x in args.lengths.split(",")]:
        a = inputs(args.batch, args.d_inner, L, args.d_state)
        f_ref, t_ref, y_ref = time_one(selective_scan_ref, a, args.repeats)
        f_par, t_par, y_par = time_one(selective_scan, a, args.repeats)
        diff = float((y_par - y_ref).abs().max())
        for impl, f, t in (("sequential", f_ref, t_ref), ("parallel", f_par, t_par)):
            print(f"{L:>5} {impl:<11} {f * 1e3:>9.1f} {t * 1e3:>11.1f} {t_ref / t:>8.2f}x {diff:>11.2e}")
            rows.append({"L": L, "impl": impl, "fwd_ms": f * 1e3, "fwd_bwd_ms": t * 1e3, "max_abs_diff": diff})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
