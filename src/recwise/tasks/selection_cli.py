"""``recwise run selection`` and ``recwise bench selection`` (ERASE protocol, AUKC)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recwise.config import config_from_dict, config_to_dict, parse_overrides
from recwise.errors import ConfigError

__all__ = ["register"]


def _common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--dataset", default="ml-100k", help="ml-100k, ml-1m, avazu, criteo, ali-ccp, kuairand")
    q.add_argument("--data-dir", default=None, help="read the raw files from this folder")
    q.add_argument("--max-rows", type=int, default=None, help="keep the first N raw rows (large datasets)")
    q.add_argument("--split-seed", type=int, default=2022, help="seed of the random split (ML, KuaiRand)")
    q.add_argument("--k", default="3,5,7,all", help="the k grid: comma-separated ints and/or 'all'")
    q.add_argument("--fields", default=None, help="candidate fields (comma-separated; default all)")
    q.add_argument("--epochs", type=int, default=None, help="maximum epochs (early stopping may end sooner)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option: train.patience=2, backbone.embed_dim=16, method.alpha=0.01 "
                        "(bench: method.<name>.alpha=0.01) (repeatable)")


def register(rs: argparse._SubParsersAction, bs: argparse._SubParsersAction,
             add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    q = rs.add_parser("selection", help="feature selection: search, top-k retrain, AUC per k and AUKC")
    _common(q)
    q.add_argument("--method", default="gbdt", help="selector name (lasso, gbdt, rf, xgboost, permutation, ...)")
    q.add_argument("--backbone", default="deepfm", help="ctr backbone (`recwise models ctr`)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/selection-<dataset>/<backbone>+<method>/seed<s>)")
    add_common(q)
    q.set_defaults(func=cmd_run)
    q = bs.add_parser("selection", help="feature-selection benchmark: methods x backbones x k x seeds, resumable")
    _common(q)
    q.add_argument("--methods", default="erase", help="comma-separated names, 'erase' (ERASE's 11) or 'all'")
    q.add_argument("--backbones", default="widedeep,deepfm,dcn,fibinet", help="comma-separated ctr backbones")
    q.add_argument("--seeds", type=int, default=3, help="number of seeds (0..n-1)")
    q.add_argument("--workers", type=int, default=1, help="parallel processes (each with 1 torch thread)")
    q.add_argument("--out", type=Path, default=None, help="output folder (default results/selection-<dataset>)")
    add_common(q)
    q.set_defaults(func=cmd_bench)


def _split_sets(items: list[str], methods: list[str]) -> tuple[dict[str, Any], dict[str, Any],
                                                                 dict[str, dict[str, Any]]]:
    """``train.x``, ``backbone.y``, ``method.z`` (run) or ``method.<name>.z`` (bench)."""
    train: dict[str, Any] = {}
    backbone: dict[str, Any] = {}
    method: dict[str, dict[str, Any]] = {}
    for key, value in parse_overrides(items).items():
        scope, _, rest = key.partition(".")
        if scope == "train" and rest:
            train[rest] = value
        elif scope == "backbone" and rest:
            backbone[rest] = value
        elif scope == "method" and rest:
            name, _, opt = rest.partition(".")
            if opt and name in methods:
                method.setdefault(name, {})[opt] = value
            elif len(methods) == 1 and not opt:
                method.setdefault(methods[0], {})[rest] = value
            else:
                raise ConfigError(f"--set key {key!r}: use method.<name>.<option> with <name> one of {methods}")
        else:
            raise ConfigError(f"--set key {key!r} must start with 'train.', 'backbone.' or 'method.'")
    return train, backbone, method


def _train_config(args: argparse.Namespace, options: dict[str, Any]):  # noqa: ANN202
    from recwise.select import ERASE_TRAIN
    from recwise.train import TrainConfig

    merged = {**config_to_dict(ERASE_TRAIN), **options}
    if args.epochs is not None:
        merged["epochs"] = args.epochs
    return config_from_dict(TrainConfig, merged, where="train")


def _prepare(args: argparse.Namespace):  # noqa: ANN202
    from recwise.data.datasets.fs_tables import prepare_fs

    return prepare_fs(args.dataset, args.data_dir, split_seed=args.split_seed, max_rows=args.max_rows)


def _grid(args: argparse.Namespace, prepared) -> tuple[list[str], tuple[int, ...]]:  # noqa: ANN001
    from recwise.tasks.selection import parse_k_grid, resolve_fields

    names = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields else None
    fields = resolve_fields(prepared, names)
    return fields, parse_k_grid(args.k, len(fields))


def cmd_run(args: argparse.Namespace) -> int:
    from recwise.registry import get_model
    from recwise.tasks.selection import SelectionRun, depends_on_backbone, run

    depends_on_backbone(args.method)  # unknown method -> ConfigError before any data is read
    get_model("ctr", args.backbone)
    train_opts, backbone_opts, method_opts = _split_sets(args.set, [args.method])
    tcfg = _train_config(args, {**train_opts, "seed": args.seed})
    prepared = _prepare(args)
    fields, ks = _grid(args, prepared)
    out = args.out or Path("runs") / f"selection-{args.dataset}" / f"{args.backbone}+{args.method}" / f"seed{args.seed}"
    t0 = time.perf_counter()
    cell = SelectionRun(args.dataset, args.method, args.backbone, args.seed, ks, tuple(fields))
    rows, ranking = run(cell, prepared, method_options=method_opts.get(args.method), backbone_options=backbone_opts,
                        train=tcfg, out_dir=out, progress=not args.quiet)
    print(f"{args.method} on {args.dataset} ({args.backbone}, seed {args.seed}): search "
          f"{ranking.search_seconds:.1f} s, total {time.perf_counter() - t0:.1f} s")
    print("ranking: " + ", ".join(f"{f} ({s:.4g})" for f, s in zip(ranking.ranking, sorted(ranking.scores,
                                                                                            reverse=True))))
    test = {(r.segment, r.metric): r.value for r in rows if r.split == "test"}
    print(f"{'k':>4} {'auc':>8} {'logloss':>8}")
    for k in ks:
        print(f"{k:>4} {test[(f'k={k}', 'auc')]:>8.4f} {test[(f'k={k}', 'logloss')]:>8.4f}")
    print(f"AUKC {test[('aukc', 'auc')]:.4f}; results in {out / 'results.csv'}, ranking in {out / 'ranking.json'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from recwise.registry import get_model
    from recwise.select import list_selectors
    from recwise.tasks.selection import ERASE_METHODS, bench, depends_on_backbone

    if args.methods == "all":
        methods = list_selectors()
    elif args.methods == "erase":
        methods = list(ERASE_METHODS)
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        depends_on_backbone(m)
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    for b in backbones:
        get_model("ctr", b)
    if args.seeds < 1:
        raise ConfigError(f"option --seeds must be >= 1; got {args.seeds}")
    if args.workers < 1:
        raise ConfigError(f"option --workers must be >= 1; got {args.workers}")
    train_opts, backbone_opts, method_opts = _split_sets(args.set, methods)
    tcfg = _train_config(args, train_opts)
    prepared = _prepare(args)
    fields, ks = _grid(args, prepared)
    out: Path = args.out or Path("results") / f"selection-{args.dataset}"
    res = bench(prepared, args.dataset, methods=methods, backbones=backbones, k=ks, seeds=range(args.seeds),
                out_dir=out, fields=fields, method_options=method_opts, backbone_options=backbone_opts, train=tcfg,
                workers=args.workers, progress=not args.quiet)
    print((out / "results.md").read_text())
    print(f"{res.searches_run} searches and {res.retrains_run} retrains run ({res.retrains_reused} reused) in "
          f"{res.wall_seconds:.1f} s with {args.workers} worker(s); results in {out / 'results.csv'}, "
          f"rankings in {out / 'rankings'}, plot {out / 'auc_vs_k.html'}")
    atomic = {"wall_seconds": res.wall_seconds, "searches_run": res.searches_run, "retrains_run": res.retrains_run,
              "retrains_reused": res.retrains_reused, "failed": res.failed, "workers": args.workers}
    from recwise.results import atomic_write_text

    atomic_write_text(out / "last_bench.json", json.dumps(atomic, indent=1))
    return 1 if res.failed else 0
