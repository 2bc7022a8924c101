"""Dense retrieval with LLM-synthesised hard negatives (SyNeg): the task and its protocol (:mod:`.protocol`).

``recwise run retrieval --dataset cranfield --arm bm25`` / ``--arm zeroshot`` / ``--arm finetune
--negatives {random,inbatch,bm25,dense,synthetic,hybrid} [--mix p]``; ``recwise bench retrieval
--arms bm25,zeroshot,finetune-bm25,finetune-hybrid-0.5`` runs arms x seeds through the grid
runner. One cell = one arm, one seed, all ``folds.k`` folds over the judged queries. ``bench``
adds paired tests over queries (Holm-corrected) and the synthesis and false-negative tables.
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

__all__ = ["ARMS", "RetrievalTask", "TASK", "bench_markdown"]

SOURCES = ("random", "inbatch", "bm25", "dense", "synthetic", "hybrid")
ARMS = ("bm25", "zeroshot", "finetune-random", "finetune-inbatch", "finetune-bm25", "finetune-dense",
        "finetune-synthetic", "finetune-hybrid-0.25", "finetune-hybrid-0.5", "finetune-hybrid-0.75")
METRICS = ("ndcg@10", "mrr@10", "recall@100", "map")


def __getattr__(name: str) -> Any:  # the protocol (torch, faiss, ranx) loads on first use, not with the CLI
    return protocol_attribute(__name__, name)


def bench_markdown(rows: list[ResultRow], cell_dirs: dict[str, list[Path]], dataset: str, baseline: str) -> str:
    """Metrics (mean ± std over seeds), paired tests over queries, synthesis counts and the false-negative audit."""
    import numpy as np

    from recwise.metrics.retrieval import paired_table

    arms = [a for a in ARMS if a in cell_dirs] + sorted(a for a in cell_dirs if a not in ARMS)
    md = [f"# retrieval on {dataset}: k-fold test metrics over all judged queries, mean ± std over seeds\n",
          *mean_std_table(rows, {a: len(cell_dirs[a]) for a in arms}, METRICS)]
    # per-query values averaged over seeds, paired over queries
    values: dict[str, dict[str, np.ndarray]] = {}
    for a in arms:
        docs = [json.loads((d / "per_query.json").read_text()) for d in cell_dirs[a]]
        values[a] = {m: np.mean([doc[m] for doc in docs], axis=0) for m in METRICS}
    families = []
    if baseline in values and len(values) > 1:
        families.append((baseline, [a for a in arms if a != baseline]))
    hybrids = [a for a in arms if a.startswith("finetune-hybrid-")]
    for mined in ("finetune-bm25", "finetune-dense"):
        if mined in values and hybrids:
            families.append((mined, hybrids))
    for base, others in families:
        md += paired_table(values, base, others, METRICS[:3],
                           f"Paired t-test over queries vs {base} (ranx; p Holm-corrected over {len(others)} arms):")
    synth = []
    audits: dict[str, dict[str, Any]] = {}  # one per miner (bm25: the bm25 cell's ranking; dense: zeroshot's)
    for a in arms:
        for d in cell_dirs[a]:
            info = json.loads((d / "run.json").read_text())
            for s in info.get("synthesis", []):
                synth.append((a, info["seed"], s))
            if "false_negative_audit" in info:
                audits.setdefault(info["false_negative_audit"]["miner"], info["false_negative_audit"])
    if synth:
        md += ["", "Synthesis (per fold: kept / rejected by reflection / by guard; LLM calls; cache hits; wall s):", "",
               "| arm | seed | fold | pairs | kept | reflection | guard | LLM calls | cache hits | tokens | wall s |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
        for a, seed, s in synth:
            md.append(f"| {a} | {seed} | {s['fold']} | {s['pairs']} | {s['kept']} | {s['rejected_by_reflection']} | "
                      f"{s['rejected_by_guard']} | {s['llm_calls']} | {s['cache_hits']} | "
                      f"{s.get('completion_tokens', '')} | {s['wall_seconds']:.1f} |")
    for miner in sorted(audits):
        audit = audits[miner]
        md += ["", f"False-negative audit ({miner} ranking of every judged query):", "",
               "| ranks | documents | judged relevant | share |", "|---|---|---|---|"]
        for w in audit["windows"]:
            md.append(f"| {w['lo']}-{w['hi']} | {w['documents']} | {w['relevant']} | {w['share']:.3f} |")
    return "\n".join(md) + "\n"


class RetrievalTask(Task):
    name = "retrieval"
    help = "dense retrieval with mined / LLM-synthesised hard negatives (SyNeg), k-fold over queries"
    bench_help = "retrieval benchmark: arms x seeds, k-fold over queries, paired tests, resumable"
    unit = "arm"
    default_unit = "bm25"
    default_units = "bm25,zeroshot"
    units_help = "comma-separated arms (bm25, zeroshot, finetune-<source>, finetune-hybrid-<p>) or 'all'"
    dataset_help = ("cranfield, cisi, a BEIR name (scifact, nfcorpus, fiqa, ...) or any name with --data-dir "
                    "(BEIR layout)")
    default_dataset = "cranfield"
    scopes = ("train", "bm25", "dense", "neg", "synth", "folds", "data")
    bare_scope = "train"
    set_help = ("override an option: train.epochs=1, train.batch_size=32, neg.lo=10, neg.hi=100, neg.miner=dense, "
                "synth.model=gemma3, synth.backend=http, dense.model=PATH, dense.index=hnsw, folds.k=5 (repeatable)")
    out_prefix = "retrieval"
    summary_metrics = METRICS

    def units(self) -> list[str]:
        return list(ARMS)

    def check_unit(self, name: str) -> None:
        if name != "finetune":
            from recwise.tasks.retrieval.protocol import parse_arm

            parse_arm(name)

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:
        parser.add_argument("--negatives", choices=SOURCES, default="bm25",
                            help="arm 'finetune': where the training negatives come from (default bm25)")
        parser.add_argument("--mix", type=float, default=0.5,
                            help="--negatives hybrid: share p of synthetic negatives (default 0.5)")

    def _arm(self, unit: str, args: argparse.Namespace) -> str:
        if unit != "finetune":
            return unit
        from recwise.errors import ConfigError

        if not 0.0 <= args.mix <= 1.0:
            raise ConfigError(f"option --mix must be in [0, 1]; got {args.mix}")
        return f"finetune-hybrid-{args.mix:g}" if args.negatives == "hybrid" else f"finetune-{args.negatives}"

    def options(self, args: argparse.Namespace, units: Any) -> dict[str, Any]:
        from recwise.tasks.retrieval.protocol import check_options

        opts = super().options(args, units)
        check_options(opts)  # every scope's keys and values, before any data is read
        return opts

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        from recwise.data.retrieval import load_collection

        split = dict(s.split("=", 1) for s in args.set if s.startswith("data.split=")).get("data.split", "test")
        col = load_collection(args.dataset, args.data_dir, split=split)
        return {"collection": col}, {"data_key": str(col.meta.get("key"))}

    def cells(self, args: argparse.Namespace, units: Any, seeds: Any, options: dict[str, Any]) -> list[Cell]:
        from recwise.bench import Cell

        arms = list(dict.fromkeys(self._arm(u, args) for u in units))
        return [Cell(self.name, args.dataset, a, s, options) for a in arms for s in seeds]

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        from recwise.tasks.retrieval import protocol

        opts = {k: v for k, v in cell.options.items() if k != "data_key"}
        return protocol.run(shared["collection"], cell.model, cell.seed, opts, out_dir=out_dir, dataset=cell.dataset,
                            resume=resume, progress=progress)

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        got = {r.metric: r.value for r in rows if r.segment == "all"}
        info = json.loads((out_dir / "run.json").read_text())
        lines = [f"{cell.model} on {cell.dataset}, seed {cell.seed}: {info['judged_queries']} judged queries in "
                 f"{len(info['fold_seconds']) or 'resumed'} folds, {seconds:.1f} s",
                 "  ".join(f"{m} {got.get(m, float('nan')):.4f}" for m in METRICS)]
        for s in info.get("synthesis", []):
            lines.append(f"synthesis fold {s['fold']}: {s['pairs']} pairs, {s['kept']} kept, "
                         f"{s['rejected_by_reflection']} rejected by reflection, "
                         f"{s['rejected_by_guard']} by the guard, "
                         f"{s['llm_calls']} LLM calls, {s['cache_hits']} cache hits, {s['wall_seconds']:.1f} s")
        lines.append(f"results in {out_dir / 'results.csv'}, run file {out_dir / 'runs' / (cell.model + '.trec')}")
        return "\n".join(lines)

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        dirs: dict[str, list[Path]] = {}
        for rec in res.records:
            d = out / "cells" / rec.path
            if rec.status == "done" and (d / "per_query.json").exists():
                dirs.setdefault(rec.model, []).append(d)
        return bench_markdown(res.rows, dirs, dataset, baseline="bm25")


TASK = RetrievalTask()
