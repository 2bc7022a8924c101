"""The multi-scenario CTR protocol of Scenario-Wise Rec, made fair.

Every model is measured the same way: the dataset's fixed split (made once from ``split_seed``,
independent of the training seed), BCE on logits, early stopping on overall validation AUC with
the best weights restored, and test AUC / logloss overall and per scenario.

Splits whose tensors would exceed ``STREAM_ABOVE_BYTES`` are streamed from the memory-mapped
cache instead of stacked in memory; under ``torchrun`` the run trains with
DistributedDataParallel and rank 0 evaluates and writes the results.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

import recwise
from recwise.config import config_from_dict, config_hash, config_to_dict
from recwise.data.cache import Prepared
from recwise.data.schema import Schema
from recwise.data.table import Batch, TableStream
from recwise.errors import ConfigError
from recwise.metrics import auc, logloss
from recwise.registry import get_model
from recwise.results import ResultRow, atomic_write_text, write_arrays, write_results
from recwise.train import TrainConfig, Trainer, predict, save_model, seed_everything
from recwise.train.trainer import dist_info, init_distributed

__all__ = ["MSRRun", "bce_loss", "evaluate", "load_preset", "resolve_configs", "run"]

TASK = "msr"
PRESETS = Path(__file__).resolve().parents[2] / "configs" / "msr"
STREAM_ABOVE_BYTES = 4 * 2**30  # a split whose batch tensors would take more is streamed (``run(stream=None)``)


@dataclass(frozen=True)
class MSRRun:
    """One cell: a dataset, a model and a seed, plus options."""

    dataset: str = "ml-100k"
    model: str = "star"
    seed: int = 0
    data_dir: str | None = None
    split_seed: int = 2022
    preset: str | None = None  # a preset YAML file (`recwise tune`'s presets.yaml); None: configs/msr/<dataset>.yaml


def load_preset(dataset: str, model: str, path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The YAML preset of a dataset: its ``train:`` options, and per model under ``models: {name: ...}``
    the model's options plus an optional ``train:`` block that overrides the dataset's for that model.

    ``path``: another preset file (``recwise tune``'s presets.yaml; its ``tuned:`` blocks, the record
    of each model's study, are not options). Default ``configs/msr/<dataset>.yaml``, when it exists.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"option --preset: no file {path}")
    else:
        path = PRESETS / f"{dataset}.yaml"
    if not path.exists():
        return {"train": {}, "model": {}}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    model_opts = dict((data.get("models") or {}).get(model) or {})
    model_opts.pop("tuned", None)
    train = {**dict(data.get("train") or {}), **dict(model_opts.pop("train", None) or {})}
    return {"train": train, "model": model_opts}


def bce_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"])
    extra = model.extra_loss()
    return loss + extra if extra is not None else loss


def evaluate(
    model: nn.Module, data: Batch | TableStream, n_scenarios: int, batch_size: int,
    predictions: Path | None = None,
) -> dict[str, dict[str, float]]:
    """AUC and logloss overall (``all``) and per scenario (``scenario=<i>``).

    ``predictions``: also write every row's label, scenario and predicted probability there
    (``.npz``; the per-row outputs that paired bootstrap tests and other tools re-score).
    """
    prob = 1.0 / (1.0 + np.exp(-predict(model, data, batch_size).astype(np.float64)))
    if isinstance(data, TableStream):
        s = data.table.schema
        label = data.column(s.label.name).astype(np.float32)
        scen = data.column(s.scenario.name).astype(np.int64) if s.scenario else np.zeros(len(label), np.int64)
    else:
        label = data["label"].numpy()
        scen = data["scenario"].numpy()
    if predictions is not None:
        write_arrays(predictions, label=label, scenario=scen, prob=prob)
    out = {"all": {"auc": auc(label, prob), "logloss": logloss(label, prob)}}
    for k in range(n_scenarios):
        m = scen == k
        out[f"scenario={k}"] = {"auc": auc(label[m], prob[m]), "logloss": logloss(label[m], prob[m]),
                                "rows": float(m.sum())}
    return out


def resolve_configs(
    cell: MSRRun, train_options: dict[str, Any] | None = None, model_options: dict[str, Any] | None = None
) -> tuple[TrainConfig, Any]:
    """The checked train and model configs of a cell: preset, then overrides (unknown keys are errors)."""
    preset = load_preset(cell.dataset, cell.model, cell.preset)
    tcfg = config_from_dict(TrainConfig, {**preset["train"], **(train_options or {}), "seed": cell.seed}, where="train")
    cls = get_model(TASK, cell.model)
    mcfg = config_from_dict(cls.Config, {**preset["model"], **(model_options or {})}, where="model")
    return tcfg, mcfg


def batch_bytes(schema: Schema, rows: int) -> int:
    """Bytes the batch tensors of ``rows`` rows take (int64 ids and scenario, float32 values and label)."""
    return (8 * len(schema.sparse) + 4 * len(schema.dense) + 8 + 4) * rows


def run(
    cell: MSRRun,
    prepared: Prepared,
    *,
    train_options: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stream: bool | None = None,
) -> list[ResultRow]:
    """Train and test one model on one dataset with one seed; returns result rows.

    ``out_dir`` receives ``results.csv``, ``run.json`` (configs, hash, timings, version), the best
    model (``model.safetensors`` + ``model.json``) and the per-epoch ``checkpoint/``.

    ``stream``: read the splits batch by batch from the prepared (memory-mapped) columns, with
    block shuffling (``TableStream(shuffle="blocks")``), instead of stacking them in memory;
    None streams a split whose tensors would exceed ``STREAM_ABOVE_BYTES``. Under torchrun
    (``WORLD_SIZE`` > 1) the training runs on every process through DDP; rank 0 computes the
    validation and test metrics on the full splits and alone writes ``out_dir``; every process
    returns the same rows.
    """
    tcfg, mcfg = resolve_configs(cell, train_options, model_options)
    cls = get_model(TASK, cell.model)
    schema = prepared.table.schema
    created = init_distributed(tcfg.device)
    try:
        return _run(cell, prepared, tcfg, mcfg, cls, schema, out_dir, resume, progress, stream)
    finally:
        if created:
            torch.distributed.destroy_process_group()


def _part(prepared: Prepared, split: str, stream: bool | None) -> Batch | TableStream:
    rows = prepared.splits[split]
    if stream or (stream is None and batch_bytes(prepared.table.schema, len(rows)) > STREAM_ABOVE_BYTES):
        return TableStream(prepared.table, rows, shuffle="blocks")
    return prepared.part(split).tensors()


def _run(cell: MSRRun, prepared: Prepared, tcfg: TrainConfig, mcfg: Any, cls: type, schema: Schema,
         out_dir: Path | None, resume: bool, progress: bool, stream: bool | None) -> list[ResultRow]:
    rank, world = dist_info()
    train, val, test = (_part(prepared, s, stream) for s in ("train", "val", "test"))
    n_scen = schema.num_scenarios
    seed_everything(cell.seed)
    model = cls(schema, mcfg)

    def monitor(m: nn.Module) -> float:
        return evaluate(m, val, n_scen, tcfg.eval_batch_size)["all"]["auc"]

    trainer = Trainer(model, tcfg, loss_fn=bce_loss, monitor=monitor, mode="max", run_dir=out_dir,
                      progress=progress, extra_state={"model": cell.model, "mcfg": config_to_dict(mcfg),
                                                      "data": prepared.meta.get("key")})
    t0 = time.perf_counter()
    result = trainer.fit(train, resume=resume)
    wall = time.perf_counter() - t0
    if rank != 0:  # rank 0 tests and writes; the others wait for its rows
        got: list[Any] = [None]
        torch.distributed.broadcast_object_list(got, 0)
        torch.distributed.barrier()
        return got[0]
    rows: list[ResultRow] = []
    for split, data in (("val", val), ("test", test)):
        preds = out_dir / "test_predictions.npz" if split == "test" and out_dir is not None else None
        for segment, metrics in evaluate(model, data, n_scen, tcfg.eval_batch_size, preds).items():
            for metric in ("auc", "logloss"):
                rows.append(ResultRow(TASK, cell.dataset, cell.model, cell.seed, split, segment, metric,
                                      metrics[metric]))
    if out_dir is not None:
        save_model(out_dir / "model", model)
        write_results(out_dir / "results.csv", rows)
        info = {
            "task": TASK, "dataset": cell.dataset, "model": cell.model, "seed": cell.seed,
            "split_seed": cell.split_seed, "data_key": prepared.meta.get("key"),
            "train_config": config_to_dict(tcfg), "model_config": config_to_dict(mcfg),
            "config_hash": config_hash(tcfg, mcfg, {"dataset": cell.dataset, "model": cell.model}),
            "version": recwise.__version__, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early, "wall_seconds": wall, "train_seconds": result.train_seconds,
            "train_samples_per_second": result.train_samples / max(result.train_seconds, 1e-9),
            "history": result.history,
        }
        if world > 1 or isinstance(train, TableStream):
            info.update(world_size=world, streamed=isinstance(train, TableStream))
        atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=list))
    if world > 1:
        torch.distributed.broadcast_object_list([rows], 0)
        torch.distributed.barrier()  # run.json exists before any process returns
    return rows
