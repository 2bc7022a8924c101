"""AdaFS and OptFS in their own protocols (per-row weights, per-value masks) beside the plain backbone.

Run::

    .venv/bin/python benchmarks/fs_soft_protocol.py                    # MovieLens-100K, MLP, seed 0
    .venv/bin/python benchmarks/fs_soft_protocol.py --dataset planted --backbone deepfm

Prints test AUC/logloss of (1) the plain backbone on all fields, (2) AdaFS's searched model (all
fields, each row reweighted by its controller), (3) OptFS's released retrain (search checkpoint,
hard value mask ``w > 0``), with OptFS's kept ratio and per-field kept fractions and AdaFS's
per-field weight mean and spread across rows. Figures only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-100k", help="ml-100k (default), another selection dataset, or planted")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--backbone", default="mlp")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="optfs.KEY=VALUE",
                    help="selector option, e.g. optfs.reg_weight=1e-3 (repeatable)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from recwise.config import replace
    from recwise.metrics import auc, logloss
    from recwise.registry import get_model
    from recwise.select import ERASE_TRAIN, get_selector
    from recwise.select.base import fit_backbone
    from recwise.train import predict, seed_everything

    if args.dataset == "planted":
        from recwise.data.synthetic import planted_ctr

        prepared = planted_ctr(100_000, seed=args.seed).prepared
    else:
        from recwise.data.datasets.fs_tables import prepare_fs

        prepared = prepare_fs(args.dataset, args.data_dir)
    train, valid, test = (prepared.part(s) for s in ("train", "val", "test"))
    cfg = replace(ERASE_TRAIN, epochs=args.epochs, device="cpu")
    options: dict[str, dict[str, str]] = {"adafs": {}, "optfs": {}}
    for item in args.set:
        key, _, value = item.partition("=")
        method, _, opt = key.partition(".")
        options.setdefault(method, {})[opt] = value

    def metrics(logits: np.ndarray) -> str:
        p = 1 / (1 + np.exp(-logits.astype(np.float64)))
        y = test.tensors()["label"].numpy()
        return f"test AUC {auc(y, p):.4f}  logloss {logloss(y, p):.4f}"

    seed_everything(args.seed)
    model = get_model("ctr", args.backbone).from_options(train.schema, {})
    t0 = time.perf_counter()
    fit_backbone(model, train, valid, cfg)
    print(f"{args.dataset}, {args.backbone}, seed {args.seed}")
    print(f"  plain backbone, all fields      {metrics(predict(model, test.tensors()))}  "
          f"({time.perf_counter() - t0:.0f} s)")

    t0 = time.perf_counter()
    ada = get_selector("adafs", options["adafs"], backbone=args.backbone, train=cfg, seed=args.seed).fit(train, valid)
    res = ada.evaluate(test)
    print(f"  AdaFS searched model            test AUC {res['auc']:.4f}  logloss {res['logloss']:.4f}  "
          f"({time.perf_counter() - t0:.0f} s)")
    w = ada.sample_weights(test)
    for f, m, s in zip(ada.fields_, w.mean(0), w.std(0)):
        print(f"      {f:16s} weight mean {m:.4f}  std over rows {s:.4f}")

    t0 = time.perf_counter()
    opt = get_selector("optfs", options["optfs"], backbone=args.backbone, train=cfg, seed=args.seed).fit(train, valid)
    res = opt.retrain_with_mask(train, valid, test)
    print(f"  OptFS retrain with value mask   test AUC {res['test_auc']:.4f}  logloss {res['test_logloss']:.4f}  "
          f"kept ratio {opt.kept_ratio_:.3f}  ({time.perf_counter() - t0:.0f} s)")
    for f, k in zip(opt.fields_, opt.kept_fraction_):
        print(f"      {f:16s} kept values {int(opt.value_mask_[f].sum()):6d}/{opt.value_mask_[f].size:<6d} "
              f"kept fraction of validation rows {k:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
