"""Wall time of one `recwise bench msr` grid under the local and the Ray executor.

Each run is a fresh `recwise bench msr` process writing to its own temporary folder (nothing
reused, no results store), so a run's wall time includes start-up, data preparation from the
prepared-data cache, and for Ray starting a local Ray instance. Printed per run: wall seconds,
the sum of the cells' own wall seconds (what the grid would cost one cell at a time), the largest
per-cell peak RSS, and whether its results.csv is byte-identical to the first run's.

    .venv/bin/python benchmarks/grid_executors.py                                 # 6 models x 3 seeds
    .venv/bin/python benchmarks/grid_executors.py --models all --seeds 3          # the full grid
    .venv/bin/python benchmarks/grid_executors.py --runs local:1,local:2,ray:1    # executor:threads per cell

``local:T`` runs cells one by one in-process with ``--threads T``; ``ray:T`` runs them as Ray tasks
on a local Ray with ``--workers`` CPUs (default: all cores) and ``--cell-threads T``, so
``workers / T`` cells run at once. Same thread count per cell gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--models", default="lr,sharedbottom,mmoe,ple,epnet,star")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None, help="cap on epochs (default: the preset's, early stopping)")
    p.add_argument("--runs", default="local:1,ray:1", help="comma-separated executor:threads-per-cell")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    args = p.parse_args()

    print(f"grid: bench msr --dataset {args.dataset} --models {args.models} --seeds {args.seeds}"
          + (f" --epochs {args.epochs}" if args.epochs else "")
          + f"; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    first: str | None = None
    lines = []
    with tempfile.TemporaryDirectory(prefix="rwgrid-") as tmp:
        for spec in args.runs.split(","):
            executor, _, threads = spec.partition(":")
            threads = threads or "1"
            out = Path(tmp) / spec.replace(":", "-")
            cmd = [sys.executable, "-m", "recwise", "--quiet"]
            if executor == "local":
                cmd += ["--threads", threads]
            cmd += ["bench", "msr", "--dataset", args.dataset, "--models", args.models, "--seeds", str(args.seeds),
                    "--out", str(out), "--store", "none", "--executor", executor]
            if executor == "ray":
                cmd += ["--workers", str(args.workers), "--cell-threads", threads]
            if args.data_dir:
                cmd += ["--data-dir", args.data_dir]
            if args.epochs:
                cmd += ["--epochs", str(args.epochs)]
            env = {**os.environ, "OMP_NUM_THREADS": threads}
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(f"{spec} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            recs = [json.loads(f.read_text()) for f in sorted((out / "cells").glob("**/cell.json"))]
            csv = (out / "results.csv").read_text()
            first = first or csv
            lines.append(f"{spec:<10} {wall:>8.1f} {sum(r['wall_seconds'] for r in recs):>10.1f} {len(recs):>6} "
                         f"{max(r['peak_rss_mb'] for r in recs):>10.0f}  {'yes' if csv == first else 'no'}")
            print(lines[-1] if len(lines) > 1 else f"{'run':<10} {'wall s':>8} {'cells s':>10} {'cells':>6} "
                  f"{'peak MiB':>10}  same results.csv\n{lines[-1]}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
