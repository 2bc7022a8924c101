"""PAD (pre-train, align, disentangle): the task and its protocol (:mod:`.protocol`).

``recwise run pad`` / ``recwise bench pad``: one cell runs phases 0-3 on one dataset with one
seed and gives rows for three models, ``sasrec-bce`` (phase 1), ``pad-aligned`` (phase 2's tower)
and ``pad`` (phase 3), tested PAD's way (history masked, per popularity bin, shortest histories).
The unit is the one name ``pad``; ``bench`` is a grid of seeds through the grid runner.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recwise.tasks.base import Task, protocol_attribute

if TYPE_CHECKING:
    from recwise.bench import Cell, GridResult
    from recwise.results import ResultRow

__all__ = ["PADRun", "PADTask", "PADTextConfig", "PADTrainConfig", "TASK", "convergence_table", "encode_item_texts",
           "gate_table", "item_texts", "run", "table"]

SHOW = ("all", "pop=warm", "pop=cold", "pop=9", "pop=10", "hist=short")
MODELS = ("sasrec-bce", "pad-aligned", "pad")
PHASES = ("phase0", "phase1", "phase2", "phase3")


def __getattr__(name: str) -> Any:  # the protocol (torch) loads on first use, not with the CLI
    return protocol_attribute(__name__, name)


def _fmt(v: list[float]) -> str:
    vals = [x for x in v if not math.isnan(x)]
    if not vals:
        return "-"
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{mean:.4f}"
    std = math.sqrt(sum((x - mean) ** 2 for x in vals) / (len(vals) - 1))
    return f"{mean:.4f} ± {std:.4f}"


def table(rows: list[ResultRow]) -> str:
    """Test hit@10 / ndcg@10 per model and segment (:data:`SHOW`), mean ± std over the seeds present."""
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        if r.split == "test" and r.segment in SHOW and r.metric in ("hit@10", "ndcg@10"):
            cells.setdefault((r.model, r.segment), {}).setdefault(r.metric, []).append(r.value)
    models = [m for m in MODELS if any(k[0] == m for k in cells)]
    lines = ["| model | " + " | ".join(f"{s} hit@10 | {s} ndcg@10" for s in SHOW) + " |",
             "|---|" + "---|---|" * len(SHOW)]
    for m in models:
        out = [_fmt(cells.get((m, s), {}).get(metric, [])) for s in SHOW for metric in ("hit@10", "ndcg@10")]
        lines.append(f"| {m} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def convergence_table(runs: dict[int, dict[str, Any]]) -> str:
    """Per phase and seed: epochs run, best epoch (0-based), best validation score, train s/epoch (``run.json``)."""
    lines = ["| phase | seed | epochs run | best epoch | best val | train s/epoch |", "|---|---|---|---|---|---|"]
    for phase in ("1", "2", "3"):
        for seed, run in sorted(runs.items()):
            ph = run.get("phases", {}).get(phase)
            if ph:
                lines.append(f"| {phase} | {seed} | {ph['epochs_run']} | {ph['best_epoch']} | {ph['best_val']:.4f} | "
                             f"{ph['seconds_per_epoch']:.1f} |")
    return "\n".join(lines) + "\n"


def gate_table(runs: dict[int, dict[str, Any]]) -> str:
    """The experts' gate weights per popularity bin at the end of phase 3, mean over the seeds (``run.json``)."""
    gates = [run["gate_weights"] for run in runs.values() if run.get("gate_weights")]
    if not gates:
        return ""
    bins = len(gates[0][0])
    lines = ["| expert | " + " | ".join(str(b + 1) for b in range(bins)) + " |", "|---|" + "---|" * bins]
    for e, name in enumerate(("ID", "aligned", "text")):
        mean = [sum(g[e][b] for g in gates) / len(gates) for b in range(bins)]
        lines.append(f"| {name} | " + " | ".join(f"{x:.3f}" for x in mean) + " |")
    return "\n".join(lines) + "\n"


class PADTask(Task):
    name = "pad"
    help = "PAD: LLM text embeddings aligned to a SASRec ID model, three experts"
    bench_help = "PAD vs its SASRec backbone over seeds"
    unit = "model"
    default_unit = "pad"
    default_units = "pad"
    dataset_help = "ml-100k, ml-1m, amazon-beauty, amazon-sports, amazon-games, yelp (item text files needed)"
    scopes = ("train", "model", "text")
    bare_scope = "train"
    set_help = "override an option: train.lr1=1e-3, model.align_loss=infonce, text.encoder=hash (repeatable)"
    out_prefix = "pad"

    def units(self) -> list[str]:
        return ["pad"]  # one cell runs every phase and reports sasrec-bce, pad-aligned and pad

    def options(self, args: argparse.Namespace, units: Any) -> dict[str, Any]:
        from recwise.config import config_from_dict
        from recwise.models.seq.pad import PADConfig
        from recwise.tasks.pad.protocol import PADTextConfig, PADTrainConfig

        opts = super().options(args, units)  # --set by scope (a bare key is train's), --epochs into train
        # fail fast on a bad option, before reading data
        config_from_dict(PADTrainConfig, opts["train"], where="train")
        config_from_dict(PADConfig, opts["model"], where="model")
        config_from_dict(PADTextConfig, opts["text"], where="text")
        return opts

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        from recwise.data.cache import cache_key
        from recwise.data.item_text import item_text_file
        from recwise.data.seq_datasets import default_raw_dir, load_sequences

        raw = Path(args.data_dir) if args.data_dir is not None else default_raw_dir(args.dataset)
        seqs, meta = load_sequences(args.dataset, raw, use_cache=False)  # keeps the raw item ids for the texts
        text_file, _ = item_text_file(args.dataset, raw)  # no item text: an error now, not after phase 0
        return {"seqs": seqs, "raw_dir": str(raw)}, {"data_key": str(meta.get("key")),
                                                     "text_key": cache_key([text_file], {"file": text_file.name})}

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        from recwise.tasks.pad import protocol

        o = cell.options
        return protocol.run(protocol.PADRun(cell.dataset, cell.seed), shared["seqs"], train_options=o.get("train"),
                            model_options=o.get("model"), text_options=o.get("text"), out_dir=out_dir,
                            resume=resume, progress=progress, raw_dir=Path(shared["raw_dir"]))

    def default_out(self, dataset: str, *, bench: bool, cell: Cell | None = None) -> Path:
        if bench:
            return Path("results") / f"pad-{dataset}"
        assert cell is not None
        return Path("runs") / f"pad-{dataset}" / f"seed{cell.seed}"

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        t = json.loads((out_dir / "run.json").read_text())["timings"]
        return (f"PAD on {cell.dataset}, seed {cell.seed}: {seconds:.1f} s (phase 0 {t['phase0']:.1f} s, "
                f"phase 1 {t['phase1']:.1f} s, phase 2 {t['phase2']:.1f} s, phase 3 {t['phase3']:.1f} s); "
                f"test, history masked:\n{table(rows)}\nresults in {out_dir / 'results.csv'}")

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        runs: dict[int, dict[str, Any]] = {}
        for rec in res.records:
            path = out / "cells" / rec.path / "run.json"
            if rec.status == "done" and path.exists():
                runs[rec.seed] = json.loads(path.read_text())
        timings = [run["timings"] for run in runs.values()]
        seeds = len({r.seed for r in res.rows})
        md = (f"# PAD on {dataset}: test metrics (history masked), mean ± std over {seeds} seeds\n\n"
              "sasrec-bce = phase 1 (PAD's SASRec backbone alone), pad-aligned = phase 2's tower, pad = phase 3.\n"
              "pop=b: target item in popularity bin b (1 most popular .. 10 coldest); pop=warm: bins 1-5; "
              "pop=cold: bins 6-10; hist=short: the shortest-history 20% of users.\n\n" + table(res.rows))
        if timings:
            md += "\n| phase | wall s (mean over seeds) |\n|---|---|\n" + "".join(
                f"| {k} | {sum(t[k] for t in timings) / len(timings):.1f} |\n" for k in PHASES)
            md += ("\nEpochs per phase (best epoch 0-based; validation metric of the selection):\n\n"
                   + convergence_table(runs))
            gates = gate_table(runs)
            if gates:
                md += ("\nGate weights per popularity bin (1 most popular .. 10 coldest) at the end of phase 3, "
                       f"mean over {len(runs)} seed(s):\n\n" + gates)
        return md


TASK = PADTask()
