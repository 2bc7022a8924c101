"""``recwise run pad`` and ``recwise bench pad`` (PAD: pre-train, align, disentangle)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from recwise.config import parse_overrides
from recwise.errors import CheckpointError, ConfigError

__all__ = ["register"]

SHOW = ("all", "pop=warm", "pop=cold", "pop=9", "pop=10", "hist=short")


def _common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--dataset", default="ml-100k", help="ml-100k, ml-1m, amazon-beauty, amazon-sports, "
                                                        "amazon-games, yelp (item text files needed)")
    q.add_argument("--data-dir", default=None, help="read the raw files (interactions and item texts) from this folder")
    q.add_argument("--epochs", type=int, default=None, help="maximum epochs per phase (early stopping may end sooner)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option: train.lr1=1e-3, model.align_loss=infonce, text.encoder=hash (repeatable)")


def register(rs: argparse._SubParsersAction, bs: argparse._SubParsersAction,
             add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    q = rs.add_parser("pad", help="PAD: LLM text embeddings aligned to a SASRec ID model, three experts")
    _common(q)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", type=Path, default=None, help="output folder (default runs/pad-<dataset>/seed<k>)")
    q.add_argument("--resume", action="store_true", help="continue a killed run at its last finished phase/epoch")
    add_common(q)
    q.set_defaults(func=cmd_run)
    q = bs.add_parser("pad", help="PAD vs its SASRec backbone over seeds")
    _common(q)
    q.add_argument("--seeds", type=int, default=3, help="number of seeds (0..n-1)")
    q.add_argument("--out", type=Path, default=None, help="output folder (default results/pad-<dataset>)")
    add_common(q)
    q.set_defaults(func=cmd_bench)


def _options(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    from recwise.tasks.pad import PADTextConfig, PADTrainConfig, split_overrides
    from recwise.config import config_from_dict
    from recwise.models.seq.pad import PADConfig

    train, model, text = split_overrides(parse_overrides(args.set))
    if args.epochs is not None:
        train["epochs"] = str(args.epochs)
    # fail fast on a bad option, before reading data
    config_from_dict(PADTrainConfig, train, where="train")
    config_from_dict(PADConfig, model, where="model")
    config_from_dict(PADTextConfig, text, where="text")
    return train, model, text


def _load(args: argparse.Namespace):  # noqa: ANN202
    from recwise.data.seq_datasets import default_raw_dir, load_sequences

    raw = Path(args.data_dir) if args.data_dir is not None else default_raw_dir(args.dataset)
    seqs, meta = load_sequences(args.dataset, raw, use_cache=False)  # keeps the raw item ids for the texts
    return seqs, raw


def _table(rows: list) -> str:
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        if r.split == "test" and r.segment in SHOW and r.metric in ("hit@10", "ndcg@10"):
            cells.setdefault((r.model, r.segment), {}).setdefault(r.metric, []).append(r.value)
    models = [m for m in ("sasrec-bce", "pad-aligned", "pad") if any(k[0] == m for k in cells)]
    lines = ["| model | " + " | ".join(f"{s} hit@10 | {s} ndcg@10" for s in SHOW) + " |",
             "|---|" + "---|---|" * len(SHOW)]
    for m in models:
        out = []
        for s in SHOW:
            for metric in ("hit@10", "ndcg@10"):
                v = cells.get((m, s), {}).get(metric, [])
                out.append(_fmt(v))
        lines.append(f"| {m} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: list[float]) -> str:
    import math

    vals = [x for x in v if not math.isnan(x)]
    if not vals:
        return "-"
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{mean:.4f}"
    std = math.sqrt(sum((x - mean) ** 2 for x in vals) / (len(vals) - 1))
    return f"{mean:.4f} ± {std:.4f}"


def cmd_run(args: argparse.Namespace) -> int:
    from recwise.tasks.pad import PADRun, run

    train, model, text = _options(args)
    seqs, raw = _load(args)
    out = args.out or Path("runs") / f"pad-{args.dataset}" / f"seed{args.seed}"
    t0 = time.perf_counter()
    rows = run(PADRun(args.dataset, args.seed, args.data_dir), seqs, train_options=train, model_options=model,
               text_options=text, out_dir=out, resume=args.resume, progress=not args.quiet, raw_dir=raw)
    info = json.loads((out / "run.json").read_text())
    t = info["timings"]
    print(f"PAD on {args.dataset}, seed {args.seed}: {time.perf_counter() - t0:.1f} s (phase 0 {t['phase0']:.1f} s, "
          f"phase 1 {t['phase1']:.1f} s, phase 2 {t['phase2']:.1f} s, phase 3 {t['phase3']:.1f} s); "
          f"test, history masked:")
    print(_table(rows))
    print(f"results in {out / 'results.csv'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import shutil

    from recwise.results import atomic_write_text, read_results, write_results
    from recwise.tasks.pad import PADRun, run

    if args.seeds < 1:
        raise ConfigError(f"option --seeds must be >= 1; got {args.seeds}")
    train, model, text = _options(args)
    seqs, raw = _load(args)
    out: Path = args.out or Path("results") / f"pad-{args.dataset}"
    rows, timings = [], []
    for s in range(args.seeds):
        cell_dir = out / "cells" / f"seed{s}"
        if (cell_dir / "results.csv").exists() and (cell_dir / "run.json").exists():
            rows += read_results(cell_dir / "results.csv")
        else:
            kw = dict(train_options=train, model_options=model, text_options=text, out_dir=cell_dir,
                      progress=not args.quiet, raw_dir=raw)
            cell = PADRun(args.dataset, s, args.data_dir)
            try:
                rows += run(cell, seqs, resume=cell_dir.exists(), **kw)  # type: ignore[arg-type]
            except CheckpointError:
                shutil.rmtree(cell_dir, ignore_errors=True)
                rows += run(cell, seqs, **kw)  # type: ignore[arg-type]
        timings.append(json.loads((cell_dir / "run.json").read_text())["timings"])
    write_results(out / "results.csv", rows)
    md = (f"# PAD on {args.dataset}: test metrics (history masked), mean ± std over {args.seeds} seeds\n\n"
          "sasrec-bce = phase 1 (PAD's SASRec backbone alone), pad-aligned = phase 2's tower, pad = phase 3.\n"
          "pop=b: target item in popularity bin b (1 most popular .. 10 coldest); pop=warm: bins 1-5; "
          "pop=cold: bins 6-10; hist=short: the shortest-history 20% of users.\n\n" + _table(rows))
    md += "\n| phase | wall s (mean over seeds) |\n|---|---|\n" + "".join(
        f"| {k} | {sum(t[k] for t in timings) / len(timings):.1f} |\n" for k in ("phase0", "phase1", "phase2", "phase3"))
    atomic_write_text(out / "results.md", md)
    print(md)
    print(f"results in {out / 'results.csv'} and {out / 'results.md'}")
    return 0
