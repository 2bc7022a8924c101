"""SHARK batched vs one row at a time (the released loop): same scores, and the speed ratio.

Run (1 thread, on a quiet machine)::

    .venv/bin/python benchmarks/shark_batched.py                       # MovieLens-100K, all 20,000 val rows
    .venv/bin/python benchmarks/shark_batched.py --dataset planted     # planted-truth data, no files needed
    .venv/bin/python benchmarks/shark_batched.py --rows 5000 --backbone deepfm --json out.json

Trains one backbone (ERASE's optimiser, ``--epochs`` cap, early stopping on validation AUC),
then scores the same validation rows with ``batch_size=1`` (the released loop: one autograd call
per row) and with ``--batch-size`` rows per call, and prints both wall times, their ratio, the
largest absolute and relative score difference and whether the rankings agree. Figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-100k", help="ml-100k (default) or planted")
    ap.add_argument("--data-dir", default=None, help="raw MovieLens-100K folder (default: the data layer's)")
    ap.add_argument("--backbone", default="mlp")
    ap.add_argument("--rows", type=int, default=0, help="validation rows to score (0: all)")
    ap.add_argument("--batch-size", type=int, default=4096, help="rows per autograd call in the batched mode")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from recwise.config import replace
    from recwise.select import ERASE_TRAIN, get_selector
    from recwise.select.shark import shark_importance

    if args.dataset == "planted":
        from recwise.data.synthetic import planted_ctr

        prepared = planted_ctr(100_000, seed=args.seed).prepared
    else:
        from recwise.data.datasets.fs_tables import prepare_fs

        prepared = prepare_fs(args.dataset, args.data_dir)
    train, valid = prepared.part("train"), prepared.part("val")
    cfg = replace(ERASE_TRAIN, epochs=args.epochs, device="cpu")
    sel = get_selector("shark", backbone=args.backbone, train=cfg, seed=args.seed)
    t0 = time.perf_counter()
    sel.fit(train, valid)
    train_s = time.perf_counter() - t0
    rows = valid if not args.rows else valid.take(np.arange(min(args.rows, len(valid))))
    data = rows.tensors()
    model = sel.model_

    t0 = time.perf_counter()
    batched = shark_importance(model, data, args.batch_size)
    batched_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    one = shark_importance(model, data, 1)
    one_s = time.perf_counter() - t0

    fields = sel.fields_
    rank_b = [fields[i] for i in np.argsort(-batched, kind="stable")]
    rank_1 = [fields[i] for i in np.argsort(-one, kind="stable")]
    out = {
        "dataset": args.dataset, "backbone": args.backbone, "rows": len(rows), "fields": len(fields),
        "batch_size": args.batch_size, "threads": args.threads, "train_seconds": round(train_s, 2),
        "one_row_seconds": round(one_s, 3), "batched_seconds": round(batched_s, 3),
        "speedup": round(one_s / batched_s, 1),
        "max_abs_diff": float(np.max(np.abs(batched - one))),
        "max_rel_diff": float(np.max(np.abs(batched - one) / np.maximum(np.abs(one), 1e-30))),
        "same_ranking": rank_b == rank_1,
        "ranking": rank_b,
        "scores": dict(zip(fields, [float(s) for s in batched])),
    }
    print(f"SHARK on {args.dataset} ({len(rows):,} validation rows, {len(fields)} fields, {args.backbone}, "
          f"{args.threads} thread(s))")
    print(f"  one row at a time (released): {one_s:9.3f} s")
    print(f"  batched ({args.batch_size} rows/call):  {batched_s:9.3f} s")
    print(f"  speed ratio:                  {one_s / batched_s:9.1f}x")
    print(f"  max |diff| = {out['max_abs_diff']:.3g}, max relative diff = {out['max_rel_diff']:.3g}, "
          f"same ranking: {out['same_ranking']}")
    print(f"  ranking: {rank_b}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
