"""Multi-scenario CTR (Scenario-Wise Rec): the task and its protocol (:mod:`.protocol`).

``recwise run msr`` / ``recwise bench msr``: every model of ``recwise models msr`` on a
multi-scenario dataset's fixed 8:1:1 split, test AUC and logloss overall and per scenario.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recwise.tasks.base import Task, protocol_attribute

if TYPE_CHECKING:
    from recwise.bench import Cell
    from recwise.results import ResultRow

__all__ = ["MSRRun", "MSRTask", "TASK", "bce_loss", "evaluate", "load_preset", "resolve_configs", "run"]


def __getattr__(name: str) -> Any:  # the protocol (torch) loads on first use, not with the CLI
    return protocol_attribute(__name__, name)


class MSRTask(Task):
    name = "msr"
    help = "multi-scenario CTR (Scenario-Wise Rec protocol)"
    bench_help = "multi-scenario CTR benchmark: models x seeds"
    default_unit = "star"
    dataset_help = "`recwise data list` (multi-scenario CTR)"
    scopes = ("train", "model")
    bare_scope = "train"
    set_help = "override an option: train.lr=1e-3, model.fcn_dims=64,32 (repeatable)"

    def units(self) -> list[str]:
        from recwise.registry import list_models

        return list_models("msr")

    def check_unit(self, name: str) -> None:
        from recwise.registry import get_model

        get_model("msr", name)

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:
        parser.add_argument("--split-seed", type=int, default=2022, help="seed of the fixed train/val/test split")
        parser.add_argument("--preset", default=None, metavar="FILE",
                            help="preset YAML (e.g. `recwise tune`'s presets.yaml; default configs/msr/<dataset>.yaml)")

    def options(self, args: argparse.Namespace, units: Any) -> dict[str, Any]:
        from recwise.config import config_to_dict
        from recwise.tasks.msr.protocol import MSRRun, resolve_configs

        opts = super().options(args, units)
        resolved = {}
        for m in units:  # checked (and resolved with the dataset's preset) before any data is read
            run = MSRRun(args.dataset, m, 0, preset=getattr(args, "preset", None))
            tcfg, mcfg = resolve_configs(run, opts["train"], opts["model"])
            resolved[m] = {"train": {k: v for k, v in config_to_dict(tcfg).items() if k != "seed"},
                           "model": config_to_dict(mcfg)}
        return {"resolved": resolved, "split_seed": args.split_seed}

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        from recwise.data.datasets import prepare

        prepared = prepare(args.dataset, args.data_dir, split_seed=args.split_seed)
        return prepared, {"data": prepared.meta.get("key")}

    def cells(self, args: argparse.Namespace, units: Any, seeds: Any, options: dict[str, Any]) -> list[Cell]:
        from recwise.bench import Cell

        rest = {k: v for k, v in options.items() if k != "resolved"}
        return [Cell(self.name, args.dataset, m, s, {**options["resolved"][m], **rest}) for m in units for s in seeds]

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        from recwise.tasks.msr import protocol

        o = cell.options
        run = protocol.MSRRun(cell.dataset, cell.model, cell.seed, split_seed=o.get("split_seed", 2022))
        return protocol.run(run, shared, train_options=o.get("train"), model_options=o.get("model"),
                            out_dir=out_dir, resume=resume, progress=progress)

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        import json

        info = json.loads((out_dir / "run.json").read_text())
        lines = [f"{cell.model} on {cell.dataset}, seed {cell.seed}: best epoch {info['best_epoch'] + 1} of "
                 f"{info['epochs_run']}, {seconds:.1f} s; results in {out_dir / 'results.csv'}",
                 f"{'segment':<12} {'auc':>8} {'logloss':>8}"]
        table: dict[str, dict[str, float]] = {}
        for r in rows:
            if r.split == "test":
                table.setdefault(r.segment, {})[r.metric] = r.value
        for seg, m in table.items():
            lines.append(f"{seg:<12} {m.get('auc', float('nan')):>8.4f} {m.get('logloss', float('nan')):>8.4f}")
        return "\n".join(lines)


TASK = MSRTask()
