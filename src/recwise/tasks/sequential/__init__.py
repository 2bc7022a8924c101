"""Sequential recommendation (SIGMA's protocol): the task and its protocol (:mod:`.protocol`).

``recwise run sequential`` / ``recwise bench sequential``: leave-one-out, full ranking over every
item, Hit/NDCG/MRR@k overall and per history-length group.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recwise.tasks.base import Task, protocol_attribute

if TYPE_CHECKING:
    from recwise.bench import Cell, GridResult
    from recwise.results import ResultRow

__all__ = ["SeqRun", "SequentialTask", "TASK", "evaluate", "run", "seq_loss"]


def __getattr__(name: str) -> Any:  # the protocol (torch) loads on first use, not with the CLI
    return protocol_attribute(__name__, name)


class SequentialTask(Task):
    name = "sequential"
    help = "sequential recommendation (leave-one-out, full ranking)"
    bench_help = "sequential recommendation benchmark: models x seeds"
    default_unit = "sasrec"
    default_units = "gru4rec,sasrec,mamba4rec,sigma"
    dataset_help = "ml-100k, ml-1m, amazon-beauty, amazon-sports, amazon-games, yelp"
    scopes = ("train", "model", "data")
    bare_scope = "train"
    set_help = "override an option: train.lr=1e-3, model.flip_len=45, data.padding=left (repeatable)"
    out_prefix = "seq"
    summary_metrics = ("hit@10", "ndcg@10", "mrr@10")
    tune_metric = "ndcg@10"  # what the trainer early-stops on; `recwise tune` selects on it too

    def units(self) -> list[str]:
        from recwise.registry import list_models

        return list_models("sequential")

    def check_unit(self, name: str) -> None:
        from recwise.registry import get_model

        get_model("sequential", name)

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:
        parser.add_argument("--examples", default=None, choices=("auto", "prefix", "sequence", "cloze"),
                            help="training-example construction (default: the model's)")
        parser.add_argument("--mask-history", action="store_true", help="score the user's earlier items -inf (PAD)")
        parser.add_argument("--preset", default=None, metavar="NAME|FILE",
                            help="options preset: a name from configs/seq/ (sigma-paper: SIGMA's own baseline "
                                 "configs, prefix examples at batch 2048) or a YAML file; default: recwise's defaults")

    def options(self, args: argparse.Namespace, units: Any) -> dict[str, Any]:
        opts = super().options(args, units)
        if args.examples is not None:
            opts["data"]["examples"] = args.examples
        if args.mask_history:
            opts["data"]["mask_history"] = "true"
        preset = getattr(args, "preset", None)
        if preset is None:
            return opts
        from recwise.tasks.sequential.protocol import load_preset, resolve_preset

        loaded = load_preset(preset)
        # each model's options, checked (unknown keys are errors) before any data is read
        resolved = {m: resolve_preset(loaded, m, opts.get("train"), opts.get("model"), opts.get("data"))
                    for m in units}
        return {**opts, "preset": preset, "resolved": resolved}

    def cells(self, args: argparse.Namespace, units: Any, seeds: Any, options: dict[str, Any]) -> list[Cell]:
        if "resolved" not in options:
            return super().cells(args, units, seeds, options)
        from recwise.bench import Cell

        rest = {k: v for k, v in options.items() if k != "resolved"}
        return [Cell(self.name, args.dataset, m, s, {**rest, **options["resolved"][m]}) for m in units for s in seeds]

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        from recwise.data.seq_datasets import load_sequences, seq_dataset_info

        seqs, meta = load_sequences(args.dataset, args.data_dir)
        return seqs, {"max_len": seq_dataset_info(args.dataset).max_len, "data_key": str(meta.get("key"))}

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        from recwise.tasks.sequential import protocol

        o = cell.options
        return protocol.run(protocol.SeqRun(cell.dataset, cell.model, cell.seed), shared,
                            dataset_max_len=o.get("max_len", 50), train_options=o.get("train"),
                            model_options=o.get("model"), data_options=o.get("data"), out_dir=out_dir, resume=resume,
                            progress=progress, data_key=o.get("data_key"))

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        import json

        info = json.loads((out_dir / "run.json").read_text())
        lines = [f"{cell.model} on {cell.dataset} ({info['examples']} examples), seed {cell.seed}: best epoch "
                 f"{info['best_epoch'] + 1} of {info['epochs_run']}, {seconds:.1f} s, "
                 f"{info['train_seconds'] / max(info['epochs_run'], 1):.2f} s/epoch; "
                 f"results in {out_dir / 'results.csv'}"]
        table: dict[str, dict[str, float]] = {}
        for r in rows:
            if r.split == "test":
                table.setdefault(r.segment, {})[r.metric] = r.value
        cols = ("hit@10", "ndcg@10", "mrr@10", "ndcg@20")
        lines.append(f"{'segment':<12} " + " ".join(f"{c:>8}" for c in cols))
        for seg, m in table.items():
            lines.append(f"{seg:<12} " + " ".join(f"{m.get(c, float('nan')):>8.4f}" for c in cols))
        return "\n".join(lines)

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        import json

        from recwise.results import summary_markdown

        timing: dict[str, list[float]] = {}
        for rec in res.records:
            path = out / "cells" / rec.path / "run.json"
            if rec.status == "done" and path.exists():
                info = json.loads(path.read_text())
                timing.setdefault(rec.model, []).append(info["train_seconds"] / max(info["epochs_run"], 1))
        md = (f"# sequential on {dataset}: test metrics, mean ± std over seeds\n\n"
              + summary_markdown(res.rows, metrics=self.summary_metrics).replace("**", ""))
        return md + "\n| model | train s/epoch (mean over seeds) |\n|---|---|\n" + "".join(
            f"| {m} | {sum(v) / len(v):.2f} |\n" for m, v in timing.items())


TASK = SequentialTask()
