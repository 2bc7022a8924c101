"""Retrieval-augmented generation with a reranker aligned by LLM rationales (RADIO): the task and its protocol.

``recwise run rag --dataset geofacts --arm radio --seed 0 [--limit N] --out DIR`` writes
``DIR/results.csv`` (model = the arm), ``DIR/predictions.jsonl`` (question, gold answers,
retrieved and reranked document ids, generated answer, EM, F1) and the stage files;
``recwise bench rag --arms retriever,reranker,radio --seeds 3`` runs arms x seeds through the grid
runner and adds paired tests of every arm against ``reranker`` (Holm-corrected). Options:
``--set retrieve.retriever=bm25``, ``llm.model=gemma3``, ``llm.backend=http``, ``llm.base_url=URL``,
``rerank.model=FOLDER``, ``radio.sampler=shift_all_neg``, ``radio.train_questions=N`` ... (see
:mod:`.protocol` and docs/rag.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recwise.results import mean_std_table
from recwise.tasks.base import Task, protocol_attribute

if TYPE_CHECKING:
    from recwise.bench import Cell, GridResult
    from recwise.results import ResultRow

__all__ = ["RagTask", "TASK", "bench_markdown"]

ARMS = ("retriever", "reranker-untuned", "reranker", "radio", "radio-retrieval-labels", "radio-rationale-only",
        "radio-no-rationale")
METRICS = ("answer_recall@5", "support_recall@5", "em", "f1", "acc")  # acc: a gold answer inside the generated text


def __getattr__(name: str) -> Any:  # the protocol (torch, faiss, sentence-transformers) loads on first use
    return protocol_attribute(__name__, name)


def bench_markdown(rows: list[ResultRow], cell_dirs: dict[str, list[Path]], dataset: str, baseline: str) -> str:
    """Metrics (mean ± std over seeds) and paired t-tests over questions against ``baseline`` (Holm-corrected)."""
    import numpy as np

    from recwise.metrics.retrieval import paired_table

    arms = [a for a in ARMS if a in cell_dirs] + sorted(a for a in cell_dirs if a not in ARMS)
    measured = {r.metric for r in rows if r.segment == "all"}
    metrics = [m for m in METRICS if m in measured]  # support recall: geofacts only
    md = [f"# rag on {dataset}: test metrics, mean ± std over seeds\n",
          *mean_std_table(rows, {a: len(cell_dirs[a]) for a in arms}, metrics)]
    values: dict[str, dict[str, Any]] = {}
    for a in arms:
        docs = [json.loads((d / "per_query.json").read_text()) for d in cell_dirs[a]]
        if len({len(doc["em"]) for doc in docs}) == 1:
            values[a] = {m: np.mean([doc[m] for doc in docs], axis=0) for m in metrics}
    others = [a for a in arms if a != baseline and a in values]
    if baseline in values and others:
        md += paired_table(values, baseline, others, metrics,
                           f"Paired t-test over questions vs {baseline} (per-question values averaged over seeds; "
                           f"p Holm-corrected over {len(others)} arms):")
    return "\n".join(md) + "\n"


class RagTask(Task):
    name = "rag"
    help = "retrieve -> rerank -> generate; RADIO's rationale-aligned reranker and its ablations"
    bench_help = "RAG benchmark: arms x seeds, answer recall / EM / F1, paired tests vs the unaligned reranker"
    unit = "arm"
    default_unit = "radio"
    default_units = "retriever,reranker,radio"
    units_help = "comma-separated arms (" + ", ".join(ARMS) + ") or 'all'"
    dataset_help = "geofacts (offline, generated), or nq, triviaqa, mmlu with --data-dir (FlashRAG / hendrycks layout)"
    default_dataset = "geofacts"
    scopes = ("retrieve", "dense", "bm25", "rerank", "radio", "llm", "eval", "data")
    set_help = ("override an option: retrieve.retriever=bm25, llm.model=gemma3, llm.backend=http, llm.base_url=URL, "
                "rerank.model=FOLDER, rerank.epochs=2, radio.train_questions=300, radio.sampler=shift_all_neg, "
                "radio.w_rationale=0.5, eval.keep=5, data.seed=0 (repeatable)")
    out_prefix = "rag"
    summary_metrics = METRICS

    def units(self) -> list[str]:
        return list(ARMS)

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:
        parser.add_argument("--limit", type=int, default=None,
                            help="evaluate the first N test questions (same as --set eval.limit=N)")

    def options(self, args: argparse.Namespace, units: Any) -> dict[str, Any]:
        from recwise.errors import ConfigError
        from recwise.tasks.rag.protocol import check_options

        opts = super().options(args, units)
        if getattr(args, "epochs", None) is not None:  # --epochs trains the reranker
            opts["rerank"]["epochs"] = opts.pop("train")["epochs"]
        opts.pop("train", None)
        if args.limit is not None:
            if args.limit < 0:
                raise ConfigError(f"option --limit must be >= 0; got {args.limit}")
            opts["eval"]["limit"] = str(args.limit)
        check_options(opts)  # every scope's keys and values, before any data is read
        return opts

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        from recwise.config import parse_overrides
        from recwise.data.qa import qa_set
        from recwise.tasks.base import split_scopes
        from recwise.tasks.rag.protocol import configs

        data = configs(split_scopes(parse_overrides(args.set), self.scopes))["data"]
        qa = qa_set(args.dataset, args.data_dir, corpus=data.corpus, test_split=data.test_split, seed=data.seed,
                    test_share=data.test_share, min_city_population=data.min_city_population)
        return {"qa": qa}, {"data_key": str(qa.collection.meta.get("key", qa.meta.get("source")))}

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        from recwise.tasks.rag import protocol

        opts = {k: v for k, v in cell.options.items() if k != "data_key"}
        return protocol.run(shared["qa"], cell.model, cell.seed, opts, out_dir=out_dir, dataset=cell.dataset,
                            resume=resume, progress=progress)

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        got = {r.metric: r.value for r in rows if r.segment == "all"}
        info = json.loads((out_dir / "run.json").read_text())
        lines = [f"{cell.model} on {cell.dataset}, seed {cell.seed}: {info['test_questions']} test questions, "
                 f"{seconds:.1f} s", "  ".join(f"{m} {v:.4f}" for m, v in got.items())]
        if "rationales" in info:
            r = info["rationales"]
            lines.append(f"rationales: {r['prompts']} prompts, {r['llm_calls']} LLM calls, {r['cache_hits']} cache "
                         f"hits, {r['empty']} empty, {r['mention_gold']} mention the gold answer, "
                         f"{r['wall_seconds']:.1f} s")
        if "groups" in info:
            g = info["groups"]
            lines.append(f"groups: {g['groups']} of {g['questions']} questions ({g['fallback']} by the short-list "
                         f"fallback, {g['skipped_short']} skipped short, {g['skipped_no_answer']} without an answer)")
        lines.append("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in info["stage_seconds"].items())
                     + (f"; reused {', '.join(info['stages_reused'])}" if info["stages_reused"] else ""))
        lines.append(f"results in {out_dir / 'results.csv'}, predictions in {out_dir / 'predictions.jsonl'}")
        return "\n".join(lines)

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        dirs: dict[str, list[Path]] = {}
        for rec in res.records:
            d = out / "cells" / rec.path
            if rec.status == "done" and (d / "per_query.json").exists():
                dirs.setdefault(rec.model, []).append(d)
        return bench_markdown(res.rows, dirs, dataset, baseline="reranker")


TASK = RagTask()
