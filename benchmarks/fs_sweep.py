"""The full ERASE sweep on MovieLens-100K: 11 methods x 4 backbones x k grid x 3 seeds, timed.

Runs ``recwise bench selection`` (the grid runner, one cell per method x backbone x seed) with
ERASE's settings: Adam 1e-3, batch 4096, early stopping on validation AUC with patience 3 (ERASE
README), an epoch cap (``--epochs``, default 100 as the README), 1 torch thread per cell. The
cells share the bench folder's caches: rankings of shallow methods are computed once per seed and
shared by the backbones; a field set already trained for a (backbone, seed) is reused.
Resumable: rerun with the same --out. ``--executor ray --workers N`` runs N cells at once on a
local Ray (the default, ``local``, runs the cells one by one in this process).

Prints wall time, time per phase (searches by method, retrains by backbone: seconds and
epochs, from the caches), and, when run on a part of the grid (fewer seeds/backbones/methods),
an estimate of the full sweep's wall time from the measured per-search and per-retrain costs.

    .venv/bin/python benchmarks/fs_sweep.py --executor ray --workers 2 --out /tmp/fs-sweep     # full
    .venv/bin/python benchmarks/fs_sweep.py --seeds 1 --out /tmp/fs-seed0                     # a third
    .venv/bin/python benchmarks/fs_sweep.py --report-only --out /tmp/fs-seed0                 # costs so far
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the tree libraries' threads: one per cell, as torch's

from recwise.cli import main as recwise_main
from recwise.tasks.selection import ERASE_BACKBONES, ERASE_METHODS, Ranking, depends_on_backbone


def _count(folder: Path) -> int:
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--methods", default=",".join(ERASE_METHODS))
    ap.add_argument("--backbones", default=",".join(ERASE_BACKBONES))
    ap.add_argument("--k", default="1,3,5,7,all")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--executor", choices=("local", "ray"), default="local")
    ap.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray (--executor ray)")
    ap.add_argument("--store", default="none", help="results store to append to (default: none)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/recwise-fs-sweep"))
    ap.add_argument("--report-only", action="store_true",
                    help="only print the costs and the estimate from the files in --out (e.g. of a killed run)")
    args = ap.parse_args()
    cache = args.out / "cache"
    cores = (args.workers or 1) if args.executor == "ray" else 1
    if not args.report_only:
        before = _count(cache / "rankings"), _count(cache / "retrains")
        argv = ["--threads", "1", "bench", "selection", "--dataset", args.dataset, "--methods", args.methods,
                "--backbones", args.backbones, "--k", args.k, "--seeds", str(args.seeds), "--epochs",
                str(args.epochs), "--set", f"train.patience={args.patience}", "--set", "train.device=cpu",
                "--executor", args.executor, "--store", args.store, "--out", str(args.out)]
        if args.data_dir:
            argv += ["--data-dir", args.data_dir]
        if args.workers:
            argv += ["--workers", str(args.workers)]
        t0 = time.perf_counter()
        code = recwise_main(argv)
        wall = time.perf_counter() - t0
        searches, retrains = _count(cache / "rankings") - before[0], _count(cache / "retrains") - before[1]
        reused = sum(json.loads(p.read_text()).get("retrains_reused", 0)
                     for p in (args.out / "cells").glob("*/seed*/run.json"))
        print(f"wall {wall:.0f} s ({wall / 60:.1f} min), {args.executor} executor with {cores} cell(s) at once: "
              f"{searches} searches, {retrains} retrains run; {reused} retrains reused over all cells; "
              f"exit code {code}")
    report(args.out, cores)


def report(out: Path, workers: int) -> None:
    """Per-phase CPU costs from the caches of a (possibly partial or killed) run, and the estimate
    of the full grid: 3 seeds x ERASE's 11 methods x 4 backbones x the k grid."""
    cache = out / "cache"
    rankings = [Ranking(**json.loads(p.read_text())["value"]) for p in sorted((cache / "rankings").glob("*.json"))]
    search_s: dict[str, list[float]] = {}
    for r in rankings:
        search_s.setdefault(r.method, []).append(r.search_cpu_seconds or r.search_seconds)
    retrain_s: dict[str, list[float]] = {}
    retrain_ep: dict[str, list[float]] = {}
    for p in sorted((cache / "retrains").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue
        bb, metrics = rec["key"]["backbone"], rec["value"]
        retrain_s.setdefault(bb, []).append(metrics.get("cpu_seconds", metrics["seconds"]))
        retrain_ep.setdefault(bb, []).append(metrics["epochs"])
    ks = sorted({k for p in (out / "cells").glob("*/seed*/run.json") for k in json.loads(p.read_text())["k"]})
    # -- per-phase costs: process CPU seconds inside each job (1 thread), i.e. what each job takes on
    # a quiet machine; the wall time above also includes waiting for the shared cores
    print("\nsearch CPU seconds per method (mean over its searches):")
    for m, v in sorted(search_s.items()):
        print(f"  {m:<18} {statistics.mean(v):7.1f} s x {len(v)}")
    print("retrain CPU seconds / epochs per backbone (mean):")
    for b, v in sorted(retrain_s.items()):
        print(f"  {b:<10} {statistics.mean(v):6.1f} s, {statistics.mean(retrain_ep[b]):4.1f} epochs x {len(v)}")
    if not search_s or not retrain_s or not ks:
        print("not enough finished jobs for an estimate yet")
        return
    # distinct field sets per (backbone, seed), from the rankings on disk
    by_seed: dict[int, list[Ranking]] = {}
    for r in rankings:
        by_seed.setdefault(r.seed, []).append(r)
    ratios = []
    for rs in by_seed.values():
        for b in ERASE_BACKBONES:
            usable = [r for r in rs if r.backbone in (None, b) and r.method in ERASE_METHODS]
            if len({r.method for r in usable}) < len(ERASE_METHODS):
                continue
            sets = {frozenset(r.ranking[:k]) for r in usable for k in ks}
            ratios.append(len(sets) / (len(ERASE_METHODS) * len(ks)))
    ratio = statistics.mean(ratios) if ratios else 1.0
    full_seeds = 3
    mean_search = {m: statistics.mean(v) for m, v in search_s.items()}
    other = statistics.mean(mean_search.values())
    n_search = sum(full_seeds * (len(ERASE_BACKBONES) if depends_on_backbone(m) else 1) for m in ERASE_METHODS)
    search_total = sum(full_seeds * (len(ERASE_BACKBONES) if depends_on_backbone(m) else 1)
                       * mean_search.get(m, other) for m in ERASE_METHODS)
    per_bb = {b: statistics.mean(v) for b, v in retrain_s.items()}
    fallback = statistics.mean(per_bb.values())
    n_retrain = {b: full_seeds * len(ERASE_METHODS) * len(ks) * ratio for b in ERASE_BACKBONES}
    retrain_total = sum(n * per_bb.get(b, fallback) for b, n in n_retrain.items())
    est = (search_total + retrain_total) / workers
    missing = [b for b in ERASE_BACKBONES if b not in per_bb] + [m for m in ERASE_METHODS if m not in mean_search]
    print(f"\nestimate for the full sweep ({len(ERASE_METHODS)} methods x {len(ERASE_BACKBONES)} backbones x "
          f"{len(ks)} k x {full_seeds} seeds): {n_search} searches ({search_total:.0f} CPU s), "
          f"~{sum(n_retrain.values()):.0f} distinct retrains ({retrain_total:.0f} CPU s; distinct-set ratio "
          f"{ratio:.2f} from {len(ratios)} (backbone, seed) groups) -> ~{est / 60:.0f} min on {workers} "
          f"quiet cores" + (f"; costs of {missing} not measured yet (mean used)" if missing else ""))


if __name__ == "__main__":
    main()
