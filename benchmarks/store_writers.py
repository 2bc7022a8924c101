"""Results store under contention: N processes appending cells at once.

Each writer appends ``--appends`` cells of ``--rows`` rows (a multi-scenario cell has 16), one
transaction per cell as the grid runner does. Prints the wall time, cells/s and rows/s for each
writer count, then checks that every row arrived. Timings depend on the disk and on what else
runs; compare writer counts within one run.

    .venv/bin/python benchmarks/store_writers.py                     # 1, 2, 4 and 8 writers
    .venv/bin/python benchmarks/store_writers.py --writers 4 --appends 50 --rows 16
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from recwise.results import ResultRow
from recwise.store import ResultStore


def _writer(path: str, worker: int, appends: int, rows: int, times) -> None:  # noqa: ANN001
    store = ResultStore(path)
    t0 = time.time()
    for i in range(appends):
        cell = [ResultRow("msr", "bench", f"m{worker}", i, "test", f"scenario={j}", "auc", 0.5 + j / 1000)
                for j in range(rows)]
        store.append(cell, {"config_hash": f"w{worker}c{i}", "wall_seconds": 1.0})
    times.put((t0, time.time()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--appends", type=int, default=30, help="cells per writer")
    ap.add_argument("--rows", type=int, default=16, help="rows per cell")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    print(f"{'writers':>7} {'cells':>6} {'seconds':>8} {'cells/s':>8} {'rows/s':>8}  rows stored")
    for n in args.writers:
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "results.duckdb")
            ResultStore(path).append([ResultRow("msr", "bench", "warm", 0, "test", "all", "auc", 0.5)])
            times = ctx.Queue()
            procs = [ctx.Process(target=_writer, args=(path, w, args.appends, args.rows, times)) for w in range(n)]
            for p in procs:
                p.start()
            spans = [times.get() for _ in procs]
            for p in procs:
                p.join()
            # from the first writer's first append to the last writer's last: interpreter start-up not counted
            wall = max(e for _, e in spans) - min(s for s, _ in spans)
            cells = n * args.appends
            stored = ResultStore(path).count() - 1
            ok = "ok" if stored == cells * args.rows and all(p.exitcode == 0 for p in procs) else "LOST ROWS"
            print(f"{n:>7} {cells:>6} {wall:>8.2f} {cells / wall:>8.1f} {cells * args.rows / wall:>8.0f}  "
                  f"{stored} ({ok})")


if __name__ == "__main__":
    main()
