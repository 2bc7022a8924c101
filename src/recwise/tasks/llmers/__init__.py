"""LLM-enhanced SASRec (LLMERS survey families): the task and its protocol (:mod:`.protocol`).

``recwise run llmers`` / ``recwise bench llmers``: one cell = one method (:mod:`.methods`: plain,
text-init, alpharec, kar, kar-item, llmrec) with one seed: the offline LLM/encoder steps, then
SASRec trained and tested on the sequential protocol, with popularity-bin and short-history
segments. ``bench`` adds each method's offline-step costs to the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recwise.tasks.base import Task, protocol_attribute
from recwise.tasks.llmers.methods import DEFAULT_METHODS, METHODS, SCOPES

if TYPE_CHECKING:
    from recwise.bench import Cell, GridResult
    from recwise.results import ResultRow

__all__ = ["LLMERSRun", "LLMERSTask", "METHODS", "SCOPES", "TASK", "bench_markdown", "run", "weighted_loss"]

SHOW = (("all", "ndcg@10"), ("all", "hit@10"), ("pop=cold", "ndcg@10"), ("pop=10", "hit@10"), ("hist=short", "ndcg@10"))
BENCH_COLUMNS = (("all", "ndcg@10"), ("all", "hit@10"), ("pop=cold", "ndcg@10"), ("pop=cold", "hit@10"),
                 ("pop=9", "hit@10"), ("pop=10", "hit@10"), ("hist=short", "ndcg@10"), ("hist=short", "hit@10"),
                 ("len=5-20", "ndcg@10"))


def __getattr__(name: str) -> Any:  # the protocol (torch) loads on first use, not with the CLI
    return protocol_attribute(__name__, name)


def bench_markdown(rows: list[ResultRow], steps: dict[str, list[dict]], timing: dict[str, list[float]],
                   dataset: str) -> str:
    """mean ± std over seeds per method and segment, plus the offline steps' cost.

    ``steps``: model label -> the offline-step records of its cells (each with its ``seed``);
    ``timing``: model label -> train seconds per epoch of each cell.
    """
    import numpy as np

    cells: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        if r.split == "test":
            cells.setdefault((r.model, r.segment, r.metric), []).append(r.value)
    models = sorted({r.model for r in rows}, key=lambda m: (m != "sasrec", m))
    cols = BENCH_COLUMNS
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
               "fallbacks | texts encoded | encoder calls | offline wall s |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
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


class LLMERSTask(Task):
    name = "llmers"
    help = "LLM-enhanced SASRec: one LLMERS method (LLM used offline only)"
    bench_help = "LLMERS benchmark: methods x seeds, resumable"
    unit = "method"
    default_unit = "plain"
    default_units = ",".join(DEFAULT_METHODS)
    dataset_help = "ml-100k (item text comes from its item file)"
    scopes = SCOPES
    bare_scope = "train"
    set_help = ("override an option: train.lr=1e-3, model.n_layers=1, kar.item_budget=50, llmrec.users=20, "
                "llm.model=gemma3, encoder.model=PATH (repeatable)")
    out_prefix = "llmers"

    def units(self) -> list[str]:
        return METHODS.names()

    def check_unit(self, name: str) -> None:
        METHODS.get(name)  # the registry's one did-you-mean error

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:
        parser.add_argument("--mask-history", action="store_true", help="score the user's earlier items -inf (PAD)")

    def options(self, args: argparse.Namespace, units: Any) -> dict[str, Any]:
        from recwise.data.seq_datasets import seq_dataset_info
        from recwise.tasks.llmers.protocol import check_options

        opts = super().options(args, units)  # --set by scope (a bare key is train's), --epochs into train
        if args.mask_history:
            opts["data"]["mask_history"] = "true"
        max_len = seq_dataset_info(args.dataset).max_len
        for m in units:  # every method's options checked before any data is read
            check_options(m, opts, max_len)
        return opts

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        from recwise.data.seq_datasets import load_sequences, seq_dataset_info

        seqs, meta = load_sequences(args.dataset, args.data_dir)
        return ({"seqs": seqs, "data_dir": args.data_dir},
                {"max_len": seq_dataset_info(args.dataset).max_len, "data_key": str(meta.get("key"))})

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        from recwise.tasks.llmers import protocol

        o = cell.options
        return protocol.run(protocol.LLMERSRun(cell.dataset, cell.model, cell.seed, shared["data_dir"]), shared["seqs"],
                            dataset_max_len=o.get("max_len", 50), options={s: o.get(s, {}) for s in SCOPES},
                            out_dir=out_dir, resume=resume, progress=progress, data_key=o.get("data_key"))

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        info = json.loads((out_dir / "run.json").read_text())
        test = {(r.segment, r.metric): r.value for r in rows if r.split == "test"}
        lines = [f"{info['model']} on {cell.dataset}, seed {cell.seed}: best epoch {info['best_epoch'] + 1} of "
                 f"{info['epochs_run']}, {seconds:.1f} s (offline steps {info['offline_seconds']:.1f} s)",
                 "  ".join(f"{m} {s}: {test.get((s, m), float('nan')):.4f}" for s, m in SHOW)]
        for st in info["offline_steps"]:
            lines.append(f"offline {st['step']}: {st['prompts']} prompts, {st['llm_calls']} LLM calls, "
                         f"{st['cache_hits']} cache hits, {st['templated']} templated, {st['fallbacks']} fallbacks, "
                         f"{st['encoded']} texts encoded ({st['encoder_calls']} by the encoder), "
                         f"{st['wall_seconds']:.1f} s")
        lines.append(f"results in {out_dir / 'results.csv'}")
        return "\n".join(lines)

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        timing: dict[str, list[float]] = {}
        steps: dict[str, list[dict]] = {}
        for rec in res.records:
            path = out / "cells" / rec.path / "run.json"
            if rec.status != "done" or not path.exists():
                continue
            info = json.loads(path.read_text())
            timing.setdefault(info["model"], []).append(info["train_seconds"] / max(info["epochs_run"], 1))
            steps.setdefault(info["model"], []).extend({**st, "seed": rec.seed} for st in info["offline_steps"])
        return bench_markdown(res.rows, steps, timing, dataset)


TASK = LLMERSTask()
