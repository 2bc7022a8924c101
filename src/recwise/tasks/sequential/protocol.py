"""The sequential-recommendation protocol (SIGMA's, which is RecBole's sequential quick start).

* Leave-one-out by time: per user the last item is the test target and the second-last the
  validation target; inputs are the latest ``max_len`` items before the target (users with
  fewer than 3 items only train).
* Full ranking over every item (padding excluded). History masking is an explicit option:
  off (RecBole, SIGMA: a repeat of a seen item can be recommended) or on (PAD: the user's earlier
  items are scored ``-inf``, the target excepted).
* Hit@k, NDCG@k, MRR@k for k = 5, 10, 20, overall (segment ``all``) and per user group of
  history length (``len=0-5``, ``len=5-20``, ``len=20-inf``: the truncated input length of the
  evaluated example, as SIGMA's ``custom_trainer.py``).
* CE over all items, Adam (lr 1e-3, no weight decay), model selection and early stopping
  (patience 10) on validation NDCG@10, best weights restored.
* A cell folder keeps every test user's rank (``test_ranks.npz``: ``user``, ``target``, ``item_len``,
  ``rank``), from which ``recwise compare`` runs a paired bootstrap over test users;
  :func:`write_test_ranks` re-scores a cell finished before ranks were kept, from its saved model.

Training examples (``data.examples``): ``prefix`` (RecBole), ``sequence`` (one window per
``max_len`` targets, a loss at every position) or ``cloze`` (BERT4Rec). ``auto`` takes the model's
default: ``sequence`` for GRU4Rec, SASRec, Mamba4Rec; ``prefix`` for SIGMA (its partial flip
lets early positions see later items, so per-position targets would leak); ``cloze`` for BERT4Rec.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import recwise
from recwise.config import config_from_dict, config_hash, config_to_dict
from recwise.data.sequence import SeqDataConfig, Sequences, eval_inputs, make_examples, seq_schema
from recwise.data.table import Batch
from recwise.errors import ConfigError, DataError
from recwise.metrics.ranking import ranking_metrics
from recwise.metrics.sequential import KS, LENGTH_GROUPS, length_group, model_ranks
from recwise.registry import get_model
from recwise.results import ResultRow, atomic_write_text, read_results, write_arrays, write_results
from recwise.train import TrainConfig, Trainer, load_model, save_model, seed_everything
from recwise.train.memory import return_freed_memory
from recwise.train.presets import sequential_train_defaults

__all__ = ["PRESETS", "SeqRun", "evaluate", "load_preset", "resolve_preset", "run", "seq_loss", "write_test_ranks"]

TASK = "sequential"
PRESETS = Path(__file__).resolve().parents[2] / "configs" / "seq"
_PRESET_KEYS = {"train", "data", "models"}


def load_preset(preset: str | Path) -> dict[str, Any]:
    """A preset of the sequential task: a name from ``configs/seq/`` (``sigma-paper``) or a YAML file.

    Layout: ``train:`` and ``data:`` options for every model, and under ``models: {name: ...}`` a
    model's options plus its own optional ``train:`` / ``data:`` blocks. Unknown top-level keys and
    unregistered model names are errors; options are checked when a model's cell is resolved
    (:func:`resolve_preset`).
    """
    import yaml

    text = str(preset)
    path = Path(text) if text.endswith((".yaml", ".yml")) or "/" in text else PRESETS / f"{text}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
        raise ConfigError(f"option --preset: no preset {text!r} (named presets: {names}; or a YAML file path)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or set(data) - _PRESET_KEYS:
        bad = sorted(set(data) - _PRESET_KEYS) if isinstance(data, dict) else data
        raise ConfigError(f"preset {path}: unknown top-level key(s) {bad}; allowed: {sorted(_PRESET_KEYS)}")
    models = dict(data.get("models") or {})
    from recwise.registry import list_models

    known = set(list_models(TASK))
    for name in models:
        if name not in known:
            raise ConfigError(f"preset {path}: unknown model {name!r} under models:; registered: {sorted(known)}")
    return {"path": str(path), "train": dict(data.get("train") or {}), "data": dict(data.get("data") or {}),
            "models": models}


def resolve_preset(preset: dict[str, Any], model: str, train_options: dict[str, Any] | None = None,
                   model_options: dict[str, Any] | None = None,
                   data_options: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """A model's ``train`` / ``model`` / ``data`` options: the preset's, then the given overrides
    (the command line's); each scope is checked against its config (unknown keys are errors)."""
    entry = dict(preset["models"].get(model) or {})
    train = {**preset["train"], **dict(entry.pop("train", None) or {}), **(train_options or {})}
    data = {**preset["data"], **dict(entry.pop("data", None) or {}), **(data_options or {})}
    mopts = {**entry, **(model_options or {})}
    cls = get_model(TASK, model)
    where = f"preset {preset['path']}, model {model}"
    config_from_dict(TrainConfig, {**train, "seed": 0}, where=f"{where}: train")
    config_from_dict(SeqDataConfig, data, where=f"{where}: data")
    config_from_dict(cls.Config, mopts, where=f"{where}: model")
    return {"train": train, "model": mopts, "data": data}


@dataclass(frozen=True)
class SeqRun:
    dataset: str = "ml-100k"
    model: str = "sasrec"
    seed: int = 0
    data_dir: str | None = None


def seq_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """CE over all items: last position (``target``), every position (``target_seq``) or cloze."""
    if "target" in batch:
        return F.cross_entropy(model(batch), batch["target"])
    if "target_seq" in batch:
        h = model.encode(batch)
        m = batch["target_seq"] > 0
        return F.cross_entropy(model.score(h[m]), batch["target_seq"][m])
    return model.cloze_loss(batch)


@torch.no_grad()
def evaluate(model: nn.Module, data: Batch, items: torch.Tensor, *, mask: bool = False, batch_size: int = 4096,
             ks: tuple[int, ...] = KS, ranks_out: Path | None = None) -> dict[str, dict[str, float]]:
    """Full-ranking metrics overall (``all``) and per history-length group (``len=lo-hi``).

    ``items`` is the flat item array of the sequences (for history masking). ``ranks_out``: also
    write each row's user, target, history length and 0-based rank there (``.npz``).
    """
    r = model_ranks(model, data, items, mask=mask, batch_size=batch_size)
    if ranks_out is not None:
        _write_ranks(ranks_out, data, r)
    return _metrics(r, data["item_len"].numpy(), ks)


def _write_ranks(path: Path, data: Batch, ranks: np.ndarray) -> None:
    write_arrays(path, user=data["user"].numpy(), target=data["target"].numpy(), item_len=data["item_len"].numpy(),
                 rank=ranks)


def _metrics(r: np.ndarray, lengths: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, dict[str, float]]:
    out = {"all": {**ranking_metrics(r, ks), "users": float(len(r))}}
    for lo, hi in LENGTH_GROUPS:
        sel = (lengths >= lo) & (lengths < hi)
        out[length_group(lo, hi)] = {**ranking_metrics(r[sel], ks), "users": float(sel.sum())}
    return out


def run(
    cell: SeqRun,
    seqs: Sequences,
    *,
    dataset_max_len: int = 50,
    train_options: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    data_options: dict[str, Any] | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    data_key: str | None = None,
) -> list[ResultRow]:
    """Train and test one model on one dataset with one seed; returns result rows.

    ``out_dir`` receives ``results.csv``, ``run.json``, ``test_ranks.npz``, the best model and ``checkpoint/``.
    """
    dcfg = config_from_dict(SeqDataConfig, data_options or {}, where="data")
    cls = get_model(TASK, cell.model)
    kind = cls.examples[0] if dcfg.examples == "auto" else dcfg.examples
    if kind not in cls.examples:
        raise ConfigError(f"model '{cell.model}' does not train on '{kind}' examples; it supports {list(cls.examples)}")
    max_len = dcfg.max_len or dataset_max_len
    tcfg = config_from_dict(TrainConfig,
                            {**sequential_train_defaults(kind), **(train_options or {}), "seed": cell.seed},
                            where="train")
    model_opts = dict(model_options or {})
    if "max_len" in {f.name for f in fields(cls.Config)}:
        model_opts.setdefault("max_len", max_len)
    mcfg = config_from_dict(cls.Config, model_opts, where="model")
    train = make_examples(seqs, kind, max_len, dcfg.padding)
    if kind == "prefix":  # large per-step activations: hand freed blocks back (same numbers, lower RSS)
        return_freed_memory()
    val = eval_inputs(seqs, "val", max_len, dcfg.padding)
    test = eval_inputs(seqs, "test", max_len, dcfg.padding)
    items = torch.from_numpy(np.asarray(seqs.items))
    seed_everything(cell.seed)
    model = cls(seq_schema(seqs.n_items), mcfg)

    def monitor(m: nn.Module) -> float:
        return evaluate(m, val, items, mask=dcfg.mask_history, batch_size=tcfg.eval_batch_size)["all"]["ndcg@10"]

    trainer = Trainer(model, tcfg, loss_fn=seq_loss, monitor=monitor, mode="max", run_dir=out_dir,
                      progress=progress, extra_state={"model": cell.model, "mcfg": config_to_dict(mcfg),
                                                      "dcfg": config_to_dict(dcfg), "data": data_key})
    t0 = time.perf_counter()
    result = trainer.fit(train, resume=resume)
    wall = time.perf_counter() - t0
    rows: list[ResultRow] = []
    metrics_by_split = {}
    for split, data in (("val", val), ("test", test)):
        ranks_out = out_dir / "test_ranks.npz" if split == "test" and out_dir is not None else None
        res = evaluate(model, data, items, mask=dcfg.mask_history, batch_size=tcfg.eval_batch_size,
                       ranks_out=ranks_out)
        metrics_by_split[split] = res
        for segment, metrics in res.items():
            for metric, value in metrics.items():
                if metric != "users":
                    rows.append(ResultRow(TASK, cell.dataset, cell.model, cell.seed, split, segment, metric, value))
    if out_dir is not None:
        save_model(out_dir / "model", model)
        write_results(out_dir / "results.csv", rows)
        n_train = len(next(iter(train.values())))
        info = {
            "task": TASK, "dataset": cell.dataset, "model": cell.model, "seed": cell.seed, "data_key": data_key,
            "examples": kind, "train_rows": n_train, "max_len": max_len,
            "train_config": config_to_dict(tcfg), "model_config": config_to_dict(mcfg),
            "data_config": config_to_dict(dcfg),
            "config_hash": config_hash(tcfg, mcfg, dcfg, {"dataset": cell.dataset, "model": cell.model}),
            "version": recwise.__version__, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early, "wall_seconds": wall, "train_seconds": result.train_seconds,
            "train_rows_per_second": result.train_samples / max(result.train_seconds, 1e-9),
            "users": {s: {seg: m["users"] for seg, m in r.items()} for s, r in metrics_by_split.items()},
            "history": result.history,
        }
        atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=list))
    return rows


def write_test_ranks(cell_dir: Path, seqs: Sequences, *, data_key: str | None = None) -> Path:
    """Re-score the test users with a finished cell's saved model (``model.safetensors``, the best
    weights) and write the cell's ``test_ranks.npz``: for cells finished before the protocol kept ranks.

    The ranks must give the cell's own test metrics (``results.csv``, every metric and segment to its
    6 decimals), else nothing is written and a :class:`DataError` names the first that differs: the
    model, the data or the code is not the cell's. ``data_key``: the loaded data's key, checked against
    the cell's ``run.json``.
    """
    info_path = cell_dir / "run.json"
    if not info_path.exists() or not (cell_dir / "results.csv").exists():
        raise DataError(f"{cell_dir}: not a finished sequential cell (no run.json or results.csv)")
    info = json.loads(info_path.read_text())
    if data_key is not None and info.get("data_key") not in (None, data_key):
        raise DataError(f"{info_path}: the cell was trained on data {info['data_key']}, not the loaded {data_key}")
    dcfg = config_from_dict(SeqDataConfig, info["data_config"], where=f"{info_path}: data_config")
    model = load_model(cell_dir / "model", task=TASK)
    test = eval_inputs(seqs, "test", info["max_len"], dcfg.padding)
    items = torch.from_numpy(np.asarray(seqs.items))
    r = model_ranks(model, test, items, mask=dcfg.mask_history,
                    batch_size=int(info["train_config"].get("eval_batch_size", 4096)))
    got = _metrics(r, test["item_len"].numpy())
    for row in read_results(cell_dir / "results.csv"):
        if row.split != "test":
            continue
        value = got.get(row.segment, {}).get(row.metric)
        if value is None or f"{value:.6f}" != f"{row.value:.6f}":
            raise DataError(f"{cell_dir}: re-scored test {row.metric} ({row.segment}) is {value}, the cell's "
                            f"results.csv has {row.value:.6f}; test_ranks.npz not written")
    path = cell_dir / "test_ranks.npz"
    _write_ranks(path, test, r)
    return path
