"""The full ERASE sweep on MovieLens-100K: 11 methods x 4 backbones x k grid x 3 seeds, timed.

Runs ``recwise.tasks.selection.bench`` (what ``recwise bench selection`` runs) with ERASE's
settings: Adam 1e-3, batch 4096, early stopping on validation AUC with patience 3 (ERASE README),
an epoch cap (``--epochs``, default 100 as the README), 1 torch thread per worker process.
Rankings of shallow methods are computed once per seed and shared by the backbones; a field set
already trained for a (backbone, seed) is reused. Resumable: rerun with the same --out.

Prints wall time, time per phase (searches by method, retrains by backbone: seconds and
epochs), and, when run on a part of the grid (fewer seeds/backbones/methods), an estimate of the
full sweep's wall time from the measured per-search and per-retrain costs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fs_sweep.py --out /tmp/fs-sweep            # full
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fs_sweep.py --seeds 1 --out /tmp/fs-seed0  # a third
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from recwise.config import replace  # noqa: E402
from recwise.data.datasets.fs_tables import prepare_fs  # noqa: E402
from recwise.select import ERASE_TRAIN  # noqa: E402
from recwise.tasks.selection import (  # noqa: E402
    ERASE_BACKBONES,
    ERASE_METHODS,
    bench,
    depends_on_backbone,
    parse_k_grid,
    resolve_fields,
)


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
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/recwise-fs-sweep"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    methods = [m for m in args.methods.split(",") if m]
    backbones = [b for b in args.backbones.split(",") if b]
    prepared = prepare_fs(args.dataset, args.data_dir)
    ks = parse_k_grid(args.k, len(resolve_fields(prepared, None)))
    train = replace(ERASE_TRAIN, epochs=args.epochs, patience=args.patience, device="cpu")
    t0 = time.perf_counter()
    res = bench(prepared, args.dataset, methods=methods, backbones=backbones, k=ks, seeds=range(args.seeds),
                out_dir=args.out, train=train, workers=args.workers, progress=True)
    wall = time.perf_counter() - t0
    print((args.out / "results.md").read_text())
    print(f"wall {wall:.0f} s ({wall / 60:.1f} min) with {args.workers} workers: {res.searches_run} searches, "
          f"{res.retrains_run} retrains run, {res.retrains_reused} reused; failed: {len(res.failed)}")

    # -- per-phase costs: process CPU seconds inside each job (1 thread), i.e. what each job takes on
    # a quiet machine; the wall time above also includes waiting for the shared cores
    search_s: dict[str, list[float]] = {}
    for r in res.rankings.values():
        search_s.setdefault(r.method, []).append(r.search_cpu_seconds or r.search_seconds)
    retrain_s: dict[str, list[float]] = {}
    retrain_ep: dict[str, list[float]] = {}
    for line in (args.out / "retrains.jsonl").read_text().splitlines():
        rec = json.loads(line)
        bb = rec["key"].split("|")[0]
        retrain_s.setdefault(bb, []).append(rec["metrics"].get("cpu_seconds", rec["metrics"]["seconds"]))
        retrain_ep.setdefault(bb, []).append(rec["metrics"]["epochs"])
    print("\nsearch CPU seconds per method (mean over its searches):")
    for m, v in sorted(search_s.items()):
        print(f"  {m:<18} {statistics.mean(v):7.1f} s x {len(v)}")
    print("retrain CPU seconds / epochs per backbone (mean):")
    for b, v in sorted(retrain_s.items()):
        print(f"  {b:<10} {statistics.mean(v):6.1f} s, {statistics.mean(retrain_ep[b]):4.1f} epochs x {len(v)}")

    # -- estimate of the full grid (3 seeds, all ERASE methods and backbones) from these costs
    full_seeds, full_methods, full_bbs = 3, list(ERASE_METHODS), list(ERASE_BACKBONES)
    if (args.seeds, sorted(methods), sorted(backbones)) != (full_seeds, sorted(full_methods), sorted(full_bbs)):
        n_search = sum(full_seeds * (len(full_bbs) if depends_on_backbone(m) else 1) for m in full_methods)
        mean_search = {m: statistics.mean(search_s[m]) for m in search_s}
        other = statistics.mean(mean_search.values()) if mean_search else 0.0
        search_total = sum(full_seeds * (len(full_bbs) if depends_on_backbone(m) else 1) * mean_search.get(m, other)
                           for m in full_methods)
        cells = len(methods) * len(backbones) * args.seeds * len(ks)
        distinct = res.retrains_run + 0.0
        reuse = distinct / max(cells - 0.0, 1.0) if not res.retrains_reused else distinct / (distinct + res.retrains_reused)
        full_cells = len(full_methods) * len(full_bbs) * full_seeds * len(ks)
        per_bb = {b: statistics.mean(v) for b, v in retrain_s.items()}
        mean_rt = statistics.mean(per_bb.get(b, statistics.mean(per_bb.values())) for b in full_bbs)
        retrain_total = full_cells * reuse * mean_rt
        est = (search_total + retrain_total) / args.workers
        print(f"\nestimate for the full sweep ({len(full_methods)} methods x {len(full_bbs)} backbones x "
              f"{len(ks)} k x {full_seeds} seeds): {n_search} searches ({search_total:.0f} s), "
              f"~{full_cells * reuse:.0f} distinct retrains ({retrain_total:.0f} s) -> ~{est / 60:.0f} min "
              f"on {args.workers} quiet cores (distinct-set ratio {reuse:.2f} from this run)")


if __name__ == "__main__":
    main()
