"""The feature-selection protocol of ERASE, over seeds and a grid of k, with AUKC.

One cell = (dataset, method, backbone, seed):

1. **search**: ``get_selector(method, options, backbone=..., train=..., seed=...).fit(train, val)``
   gives a ranking of the candidate fields. Shallow and filter methods (``uses_backbone`` False)
   do not depend on the backbone: their ranking is computed once per seed and reused.
2. **retrain**: for every k of the grid, a fresh backbone (seeded with the cell's seed) is trained
   on the top-k fields only (taken in schema order, so the same field set always gives the same
   model; a set shared by several methods or cells is trained once and reused), with early
   stopping on validation AUC (best weights restored).
3. **test**: AUC and logloss on the test split per k (rows with segment ``k=<k>``), and the
   AUKC of the cell (segment ``aukc``).

**AUKC** (area under the k-performance curve) of a cell with grid k_1 < ... < k_m and test AUCs
a_1..a_m is the trapezoid area divided by the k range, i.e. the mean AUC over [k_1, k_m] of the
piecewise-linear AUC-vs-k curve::

    AUKC = sum_{i<m} (k_{i+1} - k_i) (a_i + a_{i+1}) / 2  /  (k_m - k_1)      (m >= 2)
    AUKC = a_1                                                                (m == 1)

It lies in [0, 1] like AUC, and is comparable only between cells with the same k grid (the
grid is stored with the rankings). It is computed per seed; tables show mean ± std over seeds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import recwise
from recwise.config import config_from_dict, config_to_dict
from recwise.data.cache import Prepared
from recwise.data.table import Table
from recwise.errors import ConfigError
from recwise.metrics import auc, logloss
from recwise.registry import get_model
from recwise.results import ResultRow
from recwise.select import ERASE_TRAIN, get_selector
from recwise.select.base import SELECTORS, candidate_fields, fit_backbone
from recwise.train import TrainConfig, predict, seed_everything

__all__ = [
    "TASK",
    "Ranking",
    "SelectionRun",
    "aukc",
    "cell_rows",
    "depends_on_backbone",
    "parse_k_grid",
    "resolve_fields",
    "retrain",
    "run",
    "search",
]

TASK = "selection"


@dataclass(frozen=True)
class SelectionRun:
    """One cell: dataset, method, backbone, seed, k grid (and the candidate fields, None = all)."""

    dataset: str = "ml-100k"
    method: str = "gbdt"
    backbone: str = "deepfm"
    seed: int = 0
    k: tuple[int, ...] = ()
    fields: tuple[str, ...] | None = None


@dataclass
class Ranking:
    """The output of a search: what ``rankings/<...>.json`` holds."""

    method: str
    backbone: str | None  # None: the method does not use a backbone
    seed: int
    fields: list[str]
    scores: list[float]
    ranking: list[str]
    family: str
    granularity: str
    search_seconds: float
    options: dict[str, Any] = field(default_factory=dict)

    def top_k(self, k: int) -> list[str]:
        if not 1 <= k <= len(self.ranking):
            raise ConfigError(f"k={k} is out of range: the ranking has F={len(self.ranking)} fields")
        return self.ranking[:k]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Ranking:
        return cls(**json.loads(text))


def depends_on_backbone(method: str) -> bool:
    """Whether a method's ranking changes with the backbone (deep methods) or not (shallow, filters)."""
    get_selector(method)  # unknown name -> ConfigError
    cls = SELECTORS[method]
    return bool(getattr(cls, "uses_backbone", False)) or cls.family in ("gate", "sensitivity")


def parse_k_grid(spec: str | Sequence[int | str], n_fields: int) -> tuple[int, ...]:
    """``"3,5,7,all"`` -> (3, 5, 7, F). Sorted, de-duplicated; k outside 1..F is a ConfigError."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    out = set()
    for item in items:
        if not item:
            continue
        if item.lower() == "all":
            out.add(n_fields)
            continue
        try:
            k = int(item)
        except ValueError:
            raise ConfigError(f"option --k: {item!r} is not an integer or 'all'") from None
        if not 1 <= k <= n_fields:
            raise ConfigError(f"option --k: k={k} is out of range: the dataset has F={n_fields} candidate fields "
                              f"(k must be 1..{n_fields} or 'all')")
        out.add(k)
    if not out:
        raise ConfigError("option --k is empty; give e.g. 3,5,7,all")
    return tuple(sorted(out))


def resolve_fields(prepared: Prepared, names: Sequence[str] | None) -> list[str]:
    """The candidate fields (all feature fields by default); an unknown name is a ConfigError."""
    available = candidate_fields(prepared.table.schema)
    if not names:
        return available
    import difflib

    for n in names:
        if n not in available:
            close = difflib.get_close_matches(n, available, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; fields: {', '.join(available)}"
            raise ConfigError(f"unknown field '{n}'{hint}")
    if len(set(names)) != len(names):
        raise ConfigError(f"option --fields names a field twice: {list(names)}")
    return [n for n in available if n in names]  # schema order


def aukc(ks: Sequence[int], aucs: Sequence[float]) -> float:
    """Normalised trapezoid area under AUC(k) over [k_1, k_m] (see the module docstring)."""
    k = np.asarray(ks, dtype=np.float64)
    a = np.asarray(aucs, dtype=np.float64)
    if k.size != a.size or k.size == 0:
        raise ValueError("aukc needs one AUC per k")
    order = np.argsort(k)
    k, a = k[order], a[order]
    if k.size == 1:
        return float(a[0])
    return float(np.sum((k[1:] - k[:-1]) * (a[1:] + a[:-1]) / 2.0) / (k[-1] - k[0]))


def _table(prepared: Prepared, split: str, fields: Sequence[str]) -> Table:
    return prepared.part(split).select(list(fields))


def search(
    prepared: Prepared,
    method: str,
    *,
    backbone: str,
    seed: int,
    fields: Sequence[str] | None = None,
    method_options: dict[str, Any] | None = None,
    backbone_options: dict[str, Any] | None = None,
    train: TrainConfig = ERASE_TRAIN,
) -> Ranking:
    """Fit selector ``method`` on the train split (validation split held out) and return its ranking."""
    fields = resolve_fields(prepared, fields)
    sel = get_selector(method, method_options, backbone=backbone, backbone_options=backbone_options, train=train,
                       seed=seed, device=train.device)
    t0 = time.perf_counter()
    sel.fit(_table(prepared, "train", fields), _table(prepared, "val", fields))
    seconds = time.perf_counter() - t0
    return Ranking(method, backbone if depends_on_backbone(method) else None, seed, list(sel.fields_),
                   [float(s) for s in sel.scores_], list(sel.ranking_), sel.family, sel.granularity, seconds,
                   config_to_dict(sel.config))


def retrain(
    prepared: Prepared,
    fields: Sequence[str],
    *,
    backbone: str,
    seed: int,
    backbone_options: dict[str, Any] | None = None,
    train: TrainConfig = ERASE_TRAIN,
) -> dict[str, float]:
    """Train a fresh backbone on ``fields`` (schema order) and return val/test AUC and logloss."""
    order = resolve_fields(prepared, fields)
    cls = get_model("ctr", backbone)
    mcfg = config_from_dict(cls.Config, dict(backbone_options or {}), where="backbone")
    tr, va, te = (_table(prepared, s, order) for s in ("train", "val", "test"))
    seed_everything(seed)
    model = cls(tr.schema, mcfg)
    tcfg = config_from_dict(TrainConfig, {**config_to_dict(train), "seed": seed})
    t0 = time.perf_counter()
    result = fit_backbone(model, tr, va, tcfg)
    out = {"epochs": float(result.epochs_run), "best_epoch": float(result.best_epoch),
           "seconds": time.perf_counter() - t0}
    for split, table in (("val", va), ("test", te)):
        data = table.tensors()
        prob = 1.0 / (1.0 + np.exp(-predict(model, data, tcfg.eval_batch_size).astype(np.float64)))
        y = data["label"].numpy()
        out[f"{split}_auc"] = auc(y, prob)
        out[f"{split}_logloss"] = logloss(y, prob)
    return out


def retrain_key(backbone: str, seed: int, fields: Sequence[str]) -> str:
    return f"{backbone}|{seed}|{','.join(fields)}"


def cell_rows(dataset: str, method: str, backbone: str, seed: int, ks: Sequence[int],
              per_k: dict[int, dict[str, float]]) -> list[ResultRow]:
    """Result rows of one cell: val/test AUC and logloss per k (segment ``k=<k>``) and the AUKC."""
    model = f"{backbone}+{method}"
    rows = []
    for k in ks:
        m = per_k[k]
        for split in ("val", "test"):
            for metric in ("auc", "logloss"):
                rows.append(ResultRow(TASK, dataset, model, seed, split, f"k={k}", metric, m[f"{split}_{metric}"]))
    for split in ("val", "test"):
        rows.append(ResultRow(TASK, dataset, model, seed, split, "aukc", "auc",
                              aukc(ks, [per_k[k][f"{split}_auc"] for k in ks])))
    return rows


def run(
    cell: SelectionRun,
    prepared: Prepared,
    *,
    method_options: dict[str, Any] | None = None,
    backbone_options: dict[str, Any] | None = None,
    train: TrainConfig = ERASE_TRAIN,
    out_dir: Path | None = None,
    progress: bool = True,
) -> tuple[list[ResultRow], Ranking]:
    """Search, then retrain on the top-k for every k of ``cell.k``; returns rows and the ranking.

    ``out_dir`` receives ``results.csv``, ``ranking.json`` and ``run.json`` (configs, timings,
    per-k metrics and epochs).
    """
    from tqdm.auto import tqdm

    from recwise.results import atomic_write_text, write_results

    fields = resolve_fields(prepared, cell.fields)
    ks = cell.k or parse_k_grid("all", len(fields))
    for k in ks:
        if not 1 <= k <= len(fields):
            raise ConfigError(f"k={k} is out of range: there are F={len(fields)} candidate fields")
    t0 = time.perf_counter()
    ranking = search(prepared, cell.method, backbone=cell.backbone, seed=cell.seed, fields=fields,
                     method_options=method_options, backbone_options=backbone_options, train=train)
    per_k: dict[int, dict[str, float]] = {}
    done: dict[tuple[str, ...], dict[str, float]] = {}
    for k in tqdm(ks, desc=f"{cell.method}/{cell.backbone} retrain", disable=not progress, leave=False):
        chosen = tuple(f for f in fields if f in set(ranking.top_k(k)))
        if chosen not in done:
            done[chosen] = retrain(prepared, chosen, backbone=cell.backbone, seed=cell.seed,
                                   backbone_options=backbone_options, train=train)
        per_k[k] = {**done[chosen], "fields": list(chosen)}  # type: ignore[dict-item]
    rows = cell_rows(cell.dataset, cell.method, cell.backbone, cell.seed, ks, per_k)
    if out_dir is not None:
        write_results(out_dir / "results.csv", rows)
        atomic_write_text(out_dir / "ranking.json", ranking.to_json())
        info = {"task": TASK, **asdict(cell), "k": list(ks), "train_config": config_to_dict(train),
                "method_options": method_options or {}, "backbone_options": backbone_options or {},
                "data_key": prepared.meta.get("key"), "version": recwise.__version__,
                "wall_seconds": time.perf_counter() - t0, "search_seconds": ranking.search_seconds,
                "per_k": {str(k): v for k, v in per_k.items()}, "threads": torch.get_num_threads()}
        atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=list))
    return rows, ranking
