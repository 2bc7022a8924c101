"""Does a multi-scenario run's test AUC depend on the torch thread count? With and without
deterministic mode, seed 0, ML-100K, each model trained for ``--epochs`` epochs.

    .venv/bin/python benchmarks/thread_invariance.py --models lr,mmoe,star,m2m --epochs 2

Prints a markdown table: the test AUC (overall, 6 decimals) at 1 and 2 threads and whether the two
are bit-identical; ``--times`` adds each run's wall time (time nothing else beside it).
"""

from __future__ import annotations

import argparse
import time

import torch

from recwise.data.datasets import prepare
from recwise.tasks.msr.protocol import MSRRun, run
from recwise.train.determinism import deterministic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="lr,mmoe,star,m2m")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--times", action="store_true", help="add the wall time of each run")
    args = ap.parse_args()
    prepared = prepare(args.dataset)
    extra = " s at 1 thread | s at 2 threads |" if args.times else ""
    print(f"| model | mode | AUC, 1 thread | AUC, 2 threads | identical |{extra}\n|---|---|---|---|---|"
          + "---|---|" * bool(args.times))
    for model in args.models.split(","):
        for det in (False, True):
            auc, secs = {}, {}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                with deterministic(det):
                    rows = run(MSRRun(args.dataset, model, 0), prepared, train_options={"epochs": args.epochs},
                               progress=False)
                secs[threads] = time.perf_counter() - t0
                auc[threads] = next(r.value for r in rows if (r.split, r.segment, r.metric) == ("test", "all", "auc"))
            times = f" {secs[1]:.1f} | {secs[2]:.1f} |" if args.times else ""
            print(f"| {model} | {'deterministic' if det else 'default'} | {auc[1]:.6f} | {auc[2]:.6f} | "
                  f"{'yes' if auc[1] == auc[2] else 'no'} |{times}")


if __name__ == "__main__":
    main()
