"""``recwise run sequential`` and ``recwise bench sequential``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from recwise.config import parse_overrides
from recwise.errors import ConfigError

__all__ = ["register"]


def _common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--dataset", default="ml-100k", help="ml-100k, ml-1m, amazon-beauty, amazon-sports, "
                                                        "amazon-games, yelp")
    q.add_argument("--data-dir", default=None, help="read the raw files from this folder")
    q.add_argument("--epochs", type=int, default=None, help="maximum epochs (early stopping may end sooner)")
    q.add_argument("--examples", default=None, choices=("auto", "prefix", "sequence", "cloze"),
                   help="training-example construction (default: the model's)")
    q.add_argument("--mask-history", action="store_true", help="score the user's earlier items -inf (PAD)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option: train.lr=1e-3, model.flip_len=45, data.padding=left (repeatable)")


def register(rs: argparse._SubParsersAction, bs: argparse._SubParsersAction,
             add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    q = rs.add_parser("sequential", help="sequential recommendation (leave-one-out, full ranking)")
    _common(q)
    q.add_argument("--model", default="sasrec", help="registered model name (`recwise models sequential`)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", type=Path, default=None, help="output folder (default runs/seq-<dataset>/<model>/seed<k>)")
    q.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    add_common(q)
    q.set_defaults(func=cmd_run)
    q = bs.add_parser("sequential", help="sequential recommendation benchmark: models x seeds")
    _common(q)
    q.add_argument("--models", default="gru4rec,sasrec,mamba4rec,sigma", help="comma-separated names or 'all'")
    q.add_argument("--seeds", type=int, default=3, help="number of seeds (0..n-1)")
    q.add_argument("--out", type=Path, default=None, help="output folder (default results/seq-<dataset>)")
    from recwise.bench import add_grid_arguments

    add_grid_arguments(q)
    add_common(q)
    q.set_defaults(func=cmd_bench)


def _options(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    from recwise.tasks.sequential import split_overrides

    train, model, data = split_overrides(parse_overrides(args.set))
    if args.epochs is not None:
        train["epochs"] = str(args.epochs)
    if args.examples is not None:
        data["examples"] = args.examples
    if args.mask_history:
        data["mask_history"] = "true"
    return train, model, data


def _load(args: argparse.Namespace):  # noqa: ANN202
    from recwise.data.seq_datasets import load_sequences, seq_dataset_info

    seqs, meta = load_sequences(args.dataset, args.data_dir)
    return seqs, meta, seq_dataset_info(args.dataset).max_len


def _print(rows: list, header: str) -> None:
    print(header)
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.split == "test":
            table.setdefault(r.segment, {})[r.metric] = r.value
    cols = ("hit@10", "ndcg@10", "mrr@10", "ndcg@20")
    print(f"{'segment':<12} " + " ".join(f"{c:>8}" for c in cols))
    for seg, m in table.items():
        print(f"{seg:<12} " + " ".join(f"{m.get(c, float('nan')):>8.4f}" for c in cols))


def cmd_run(args: argparse.Namespace) -> int:
    from recwise.registry import get_model
    from recwise.tasks.sequential import SeqRun, run

    get_model("sequential", args.model)
    train, model, data = _options(args)
    seqs, meta, max_len = _load(args)
    out = args.out or Path("runs") / f"seq-{args.dataset}" / args.model / f"seed{args.seed}"
    t0 = time.perf_counter()
    rows = run(SeqRun(args.dataset, args.model, args.seed, args.data_dir), seqs, dataset_max_len=max_len,
               train_options=train, model_options=model, data_options=data, out_dir=out, resume=args.resume,
               progress=not args.quiet, data_key=str(meta.get("key")))
    info = json.loads((out / "run.json").read_text())
    _print(rows, f"{args.model} on {args.dataset} ({info['examples']} examples), seed {args.seed}: best epoch "
           f"{info['best_epoch'] + 1} of {info['epochs_run']}, {time.perf_counter() - t0:.1f} s, "
           f"{info['train_seconds'] / max(info['epochs_run'], 1):.2f} s/epoch; results in {out / 'results.csv'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from recwise.bench import Cell, grid_options, run_grid
    from recwise.bench.cells import seq_cell
    from recwise.registry import get_model, list_models
    from recwise.results import atomic_write_text, summary_markdown

    models = list_models("sequential") if args.models == "all" else [
        m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        get_model("sequential", m)
    if args.seeds < 1:
        raise ConfigError(f"option --seeds must be >= 1; got {args.seeds}")
    grid = grid_options(args)
    train, model_opts, data = _options(args)
    seqs, meta, max_len = _load(args)
    out: Path = args.out or Path("results") / f"seq-{args.dataset}"
    data_key = str(meta.get("key"))
    options = {"train": train, "model": model_opts, "data": data, "max_len": max_len, "data_key": data_key}
    cells = [Cell("sequential", args.dataset, m, s, options) for m in models for s in range(args.seeds)]
    res = run_grid(cells, seq_cell, out, shared=seqs, **grid)
    timing: dict[str, list[float]] = {}
    for rec in res.records:
        if rec.status == "done" and (out / "cells" / rec.path / "run.json").exists():
            info = json.loads((out / "cells" / rec.path / "run.json").read_text())
            timing.setdefault(rec.model, []).append(info["train_seconds"] / max(info["epochs_run"], 1))
    metrics = ("hit@10", "ndcg@10", "mrr@10")
    md = (f"# sequential on {args.dataset}: test metrics, mean ± std over seeds\n\n"
          + summary_markdown(res.rows, metrics=metrics).replace("**", ""))
    md += "\n| model | train s/epoch (mean over seeds) |\n|---|---|\n" + "".join(
        f"| {m} | {sum(v) / len(v):.2f} |\n" for m, v in timing.items())
    if res.failed:
        md += "\nFailed cells:\n\n" + "".join(f"- {f.model} seed {f.seed}: {f.reason}\n" for f in res.failed)
    atomic_write_text(out / "results.md", md)
    print(md)
    print(f"{res.ran} cells run, {res.reused} reused, {len(res.failed)} failed in {res.wall_seconds:.1f} s "
          f"({grid['executor']} executor); results in {out / 'results.csv'} and {out / 'results.md'}")
    return 1 if res.failed else 0
