"""``recwise run llmers`` and ``recwise bench llmers``: LLM-enhanced SASRec (LLMERS families)."""

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
from recwise.errors import CheckpointError, ConfigError

__all__ = ["register"]

METHOD_HELP = "plain, text-init (LLM2X/LLMInit), alpharec, kar, kar-item, llmrec"


def _common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--dataset", default="ml-100k", help="ml-100k (item text comes from its item file)")
    q.add_argument("--data-dir", default=None, help="read the raw files (interactions and u.item) from this folder")
    q.add_argument("--epochs", type=int, default=None, help="maximum epochs (early stopping may end sooner)")
    q.add_argument("--mask-history", action="store_true", help="score the user's earlier items -inf (PAD)")
    q.add_argument("--threads", type=int, default=None, help="torch intra-op threads (1 on shared machines)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option: train.lr=1e-3, model.n_layers=1, kar.item_budget=50, "
                        "llmrec.users=20, llm.model=gemma3, encoder.model=PATH (repeatable)")


def register(rs: argparse._SubParsersAction, bs: argparse._SubParsersAction,
             add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    q = rs.add_parser("llmers", help="LLM-enhanced SASRec: one LLMERS method (LLM used offline only)")
    _common(q)
    q.add_argument("--method", default="plain", help=METHOD_HELP)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", type=Path, default=None, help="output folder (default runs/llmers-<dataset>/<method>/seed<k>)")
    q.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    add_common(q)
    q.set_defaults(func=cmd_run)
    q = bs.add_parser("llmers", help="LLMERS benchmark: methods x seeds, resumable")
    _common(q)
    q.add_argument("--methods", default="plain,text-init,alpharec,kar,kar-item,llmrec", help=f"comma-separated: {METHOD_HELP}")
    q.add_argument("--seeds", type=int, default=3, help="number of seeds (0..n-1)")
    q.add_argument("--out", type=Path, default=None, help="output folder (default results/llmers-<dataset>)")
    q.add_argument("--report-only", action="store_true", help="run nothing: tabulate the finished cells")
    add_common(q)
    q.set_defaults(func=cmd_bench)


def _options(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    from recwise.tasks.llmers import split_llmers_overrides

    opts = split_llmers_overrides(parse_overrides(args.set))
    if args.epochs is not None:
        opts["train"]["epochs"] = str(args.epochs)
    if args.mask_history:
        opts["data"]["mask_history"] = "true"
    if getattr(args, "quiet", False):
        opts["encoder"].setdefault("show_progress", "false")
    return opts


def _setup(args: argparse.Namespace):  # noqa: ANN202
    import torch

    from recwise.data.seq_datasets import load_sequences, seq_dataset_info

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"option --threads must be >= 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    seqs, meta = load_sequences(args.dataset, args.data_dir)
    return seqs, meta, seq_dataset_info(args.dataset).max_len


def _check_methods(names: list[str]) -> None:
    from recwise.tasks.llmers import METHODS

    for m in names:
        if m not in METHODS:
            raise ConfigError(f"unknown LLMERS method {m!r}; choose from {', '.join(METHODS)}")


SHOW = (("all", "ndcg@10"), ("all", "hit@10"), ("pop=cold", "ndcg@10"), ("pop=10", "hit@10"), ("hist=short", "ndcg@10"))


def cmd_run(args: argparse.Namespace) -> int:
    from recwise.tasks.llmers import LLMERSRun, run

    _check_methods([args.method])
    opts = _options(args)
    seqs, meta, max_len = _setup(args)
    out = args.out or Path("runs") / f"llmers-{args.dataset}" / args.method / f"seed{args.seed}"
    t0 = time.perf_counter()
    rows = run(LLMERSRun(args.dataset, args.method, args.seed, args.data_dir), seqs, dataset_max_len=max_len,
               options=opts, out_dir=out, resume=args.resume, progress=not args.quiet, data_key=str(meta.get("key")))
    info = json.loads((out / "run.json").read_text())
    test = {(r.segment, r.metric): r.value for r in rows if r.split == "test"}
    print(f"{info['model']} on {args.dataset}, seed {args.seed}: best epoch {info['best_epoch'] + 1} of "
          f"{info['epochs_run']}, {time.perf_counter() - t0:.1f} s (offline steps {info['offline_seconds']:.1f} s)")
    print("  ".join(f"{m} {s}: {test.get((s, m), float('nan')):.4f}" for s, m in SHOW))
    for st in info["offline_steps"]:
        print(f"offline {st['step']}: {st['prompts']} prompts, {st['llm_calls']} LLM calls, {st['cache_hits']} cache "
              f"hits, {st['templated']} templated, {st['fallbacks']} fallbacks, {st['encoded']} texts encoded "
              f"({st['encoder_calls']} by the encoder), {st['wall_seconds']:.1f} s")
    print(f"results in {out / 'results.csv'}")
    return 0


def bench_markdown(rows: list, steps: dict[str, list[dict]], timing: dict[str, list[float]], dataset: str) -> str:
    """mean ± std over seeds per method and segment, plus the offline steps' cost."""
    import numpy as np

    cells: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        if r.split == "test":
            cells.setdefault((r.model, r.segment, r.metric), []).append(r.value)
    models = sorted({r.model for r in rows}, key=lambda m: (m != "sasrec", m))
    cols = [("all", "ndcg@10"), ("all", "hit@10"), ("pop=cold", "ndcg@10"), ("pop=cold", "hit@10"),
            ("pop=9", "hit@10"), ("pop=10", "hit@10"), ("hist=short", "ndcg@10"), ("hist=short", "hit@10"),
            ("len=5-20", "ndcg@10")]
    md = [f"# LLMERS on {dataset}: test metrics, mean ± std over seeds\n",
          "| model | seeds | " + " | ".join(f"{m} {s}" for s, m in cols) + " |",
          "|---|---|" + "---|" * len(cols)]
    for mod in models:
        row = []
        n = 0
        for s, m in cols:
            v = cells.get((mod, s, m), [])
            n = max(n, len(v))
            row.append("-" if not v else f"{np.mean(v):.4f}" + (f" ± {np.std(v, ddof=1):.4f}" if len(v) > 1 else ""))
        md.append(f"| {mod} | {n} | " + " | ".join(row) + " |")
    md += ["", "| model | train s/epoch (mean) | offline step | prompts | LLM calls | cache hits | templated | "
               "fallbacks | texts encoded | encoder calls | offline wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for mod in models:
        t = timing.get(mod, [])
        sp = f"{sum(t) / len(t):.2f}" if t else "-"
        sts = steps.get(mod) or [{}]
        for st in sts:
            if not st:
                md.append(f"| {mod} | {sp} | - | | | | | | | | |")
                continue
            md.append(f"| {mod} | {sp} | {st['step']} (seed {st['seed']}) | {st['prompts']} | {st['llm_calls']} | "
                      f"{st['cache_hits']} | {st['templated']} | {st['fallbacks']} | {st['encoded']} | "
                      f"{st['encoder_calls']} | {st['wall_seconds']:.1f} |")
    return "\n".join(md) + "\n"


def cmd_bench(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from recwise.results import atomic_write_text, read_results, write_results
    from recwise.tasks.llmers import LLMERSRun, run

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    _check_methods(methods)
    if args.seeds < 1:
        raise ConfigError(f"option --seeds must be >= 1; got {args.seeds}")
    opts = _options(args)
    seqs, meta, max_len = _setup(args)
    out: Path = args.out or Path("results") / f"llmers-{args.dataset}"
    cells = [(m, s) for m in methods for s in range(args.seeds)]
    rows, failed, skipped = [], [], 0
    timing: dict[str, list[float]] = {}
    steps: dict[str, list[dict]] = {}
    bar = tqdm(cells, desc="cells", disable=args.quiet)
    for m, s in bar:
        bar.set_postfix(method=m, seed=s, failed=len(failed))
        cell_dir = out / "cells" / m / f"seed{s}"
        kw = dict(dataset_max_len=max_len, options=opts, out_dir=cell_dir, progress=False,
                  data_key=str(meta.get("key")))
        if (cell_dir / "results.csv").exists():
            rows += read_results(cell_dir / "results.csv")
            skipped += 1
        elif args.report_only:
            continue
        else:
            cell = LLMERSRun(args.dataset, m, s, args.data_dir)
            try:
                try:
                    rows += run(cell, seqs, resume=(cell_dir / "checkpoint").exists(), **kw)  # type: ignore[arg-type]
                except CheckpointError:
                    shutil.rmtree(cell_dir / "checkpoint", ignore_errors=True)
                    rows += run(cell, seqs, **kw)  # type: ignore[arg-type]
            except Exception as exc:
                if isinstance(exc, ConfigError):
                    raise
                cell_dir.mkdir(parents=True, exist_ok=True)
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                atomic_write_text(cell_dir / "error.txt", reason + "\n\n" + traceback.format_exc())
                failed.append((m, s, reason))
                print(f"recwise: cell {m} seed {s} failed: {reason}", file=sys.stderr)
                continue
        info = json.loads((cell_dir / "run.json").read_text())
        timing.setdefault(info["model"], []).append(info["train_seconds"] / max(info["epochs_run"], 1))
        steps.setdefault(info["model"], []).extend({**st, "seed": s} for st in info["offline_steps"])
    bar.close()
    write_results(out / "results.csv", rows)
    md = bench_markdown(rows, steps, timing, args.dataset)
    if failed:
        md += "\nFailed cells:\n\n" + "".join(f"- {m} seed {s}: {r}\n" for m, s, r in failed)
    missing = [f"{m}/seed{s}" for m, s in cells if not (out / "cells" / m / f"seed{s}" / "results.csv").exists()]
    if missing:
        md += "\nNot run: " + ", ".join(missing) + "\n"
    atomic_write_text(out / "results.md", md)
    print(md)
    print(f"{len(cells) - skipped - len(failed) - (len(missing) if args.report_only else 0)} cells run, {skipped} "
          f"reused, {len(failed)} failed; "
          f"results in {out / 'results.csv'} and {out / 'results.md'}")
    return 1 if failed else 0
