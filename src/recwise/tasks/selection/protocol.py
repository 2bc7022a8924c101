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

**Caches** (``recwise bench selection``; :func:`run` with ``cache_dir``). The cells of a bench
share two caches in ``<bench folder>/cache``, so that the ERASE sweep stays affordable:

* ``rankings/<method>-<backbone|any>-seed<s>-<hash>.json``: one search per backbone-independent
  method and seed, whatever the backbone of the cell;
* ``retrains/<backbone>-seed<s>-<hash>.json``: one retrain per (backbone, seed, field set).

``<hash>`` is a hash of everything that changes the entry's numbers (method options, candidate
fields, data key; for retrains and backbone-dependent searches also the train config without its
seed and the backbone options), and the file repeats that key, which is checked on reading. Each
entry is its own file written atomically, so cells may run concurrently (``--executor ray``); a
per-entry lock (``locks/``, ``fcntl.flock`` where available) makes a second process wait for an
entry being computed instead of computing it again.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import recwise
from recwise.config import config_from_dict, config_hash, config_to_dict
from recwise.data.cache import Prepared
from recwise.data.table import Table
from recwise.errors import ConfigError
from recwise.metrics import auc, logloss
from recwise.registry import did_you_mean, get_model
from recwise.results import ResultRow, atomic_write_text, write_results
from recwise.select import ERASE_TRAIN, get_selector
from recwise.select.base import SELECTORS, candidate_fields, fit_backbone
from recwise.train import TrainConfig, predict, seed_everything

__all__ = [
    "Ranking",
    "SelectionData",
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

TASK_NAME = "selection"


@dataclass
class SelectionData:
    """What every cell of a command shares: the prepared table and, for a bench, the cache folder."""

    prepared: Prepared
    cache_dir: Path | None = None


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
    search_cpu_seconds: float = 0.0  # process CPU time: the wall time on a quiet machine at 1 thread
    degenerate: str = ""  # the selector's reason when its scores do not separate the fields

    def top_k(self, k: int) -> list[str]:
        if not 1 <= k <= len(self.ranking):
            raise ConfigError(f"k={k} is out of range: the ranking has F={len(self.ranking)} fields")
        return self.ranking[:k]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=list)

    @classmethod
    def from_json(cls, text: str) -> Ranking:
        return cls(**json.loads(text))


def depends_on_backbone(method: str) -> bool:
    """Whether a method's ranking changes with the backbone (deep methods) or not (shallow, filters)."""
    cls = SELECTORS.get(method)  # unknown name -> ConfigError
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
    for n in names:
        if n not in available:
            raise ConfigError(f"unknown field '{n}'" + did_you_mean(n, available).replace("; known:", "; fields:"))
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
    t0, c0 = time.perf_counter(), time.process_time()
    sel.fit(_table(prepared, "train", fields), _table(prepared, "val", fields))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Ranking(method, backbone if depends_on_backbone(method) else None, seed, list(sel.fields_),
                   [float(s) for s in sel.scores_], list(sel.ranking_), sel.family, sel.granularity, seconds,
                   config_to_dict(sel.config), cpu, sel.degenerate_)


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
    t0, c0 = time.perf_counter(), time.process_time()
    result = fit_backbone(model, tr, va, tcfg)
    out = {"epochs": float(result.epochs_run), "best_epoch": float(result.best_epoch),
           "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
    for split, table in (("val", va), ("test", te)):
        data = table.tensors()
        prob = 1.0 / (1.0 + np.exp(-predict(model, data, tcfg.eval_batch_size).astype(np.float64)))
        y = data["label"].numpy()
        out[f"{split}_auc"] = auc(y, prob)
        out[f"{split}_logloss"] = logloss(y, prob)
    return out


def cell_rows(dataset: str, method: str, backbone: str, seed: int, ks: Sequence[int],
              per_k: dict[int, dict[str, float]]) -> list[ResultRow]:
    """Result rows of one cell: val/test AUC and logloss per k (segment ``k=<k>``) and the AUKC."""
    model = f"{backbone}+{method}"
    rows = []
    for k in ks:
        m = per_k[k]
        for split in ("val", "test"):
            for metric in ("auc", "logloss"):
                rows.append(ResultRow(TASK_NAME, dataset, model, seed, split, f"k={k}", metric, m[f"{split}_{metric}"]))
    for split in ("val", "test"):
        rows.append(ResultRow(TASK_NAME, dataset, model, seed, split, "aukc", "auc",
                              aukc(ks, [per_k[k][f"{split}_auc"] for k in ks])))
    return rows


# ---------------------------------------------------------------------------------------------
# the caches a bench's cells share (see the module docstring)


def train_key(train: TrainConfig) -> dict[str, Any]:
    """The train config as it enters cache keys: without the seed, which every cell replaces."""
    return {k: v for k, v in config_to_dict(train).items() if k != "seed"}


def _jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), so keys compare equal to stored ones."""
    return json.loads(json.dumps(obj, sort_keys=True, default=list))


@contextlib.contextmanager
def _entry_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (released when the holder exits, even killed)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent cells may compute an entry twice, same content
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_entry(path: Path, key: dict[str, Any]) -> Any | None:
    try:
        rec = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict) or rec.get("key") != key or "value" not in rec:
        return None  # another key under the same hash prefix, or a damaged file: compute again
    return rec["value"]


def cached(cache_dir: Path, kind: str, name: str, key: dict[str, Any],
           compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """``compute()``'s value from ``cache_dir/<kind>/<name>-<hash of key>.json``, computed and written
    when missing; returns ``(value, computed)``. The value must be a JSON object."""
    key = _jsonable(key)
    stem = f"{name}-{config_hash(key)}"
    path = cache_dir / kind / f"{stem}.json"
    value = _read_entry(path, key)
    if value is not None:
        return value, False
    with _entry_lock(cache_dir / "locks" / f"{kind}-{stem}.lock"):
        value = _read_entry(path, key)  # written by another cell while this one waited for the lock
        if value is not None:
            return value, False
        value = _jsonable(compute())
        atomic_write_text(path, json.dumps({"key": key, "value": value}, indent=1))
    return value, True


def cached_search(cache_dir: Path | None, prepared: Prepared, method: str, *, backbone: str, seed: int,
                  fields: Sequence[str], method_options: dict[str, Any] | None,
                  backbone_options: dict[str, Any] | None, train: TrainConfig) -> tuple[Ranking, bool]:
    """:func:`search`, through the rankings cache when ``cache_dir`` is given: ``(ranking, searched)``.

    A method that does not depend on the backbone has one entry per seed for every backbone."""

    def compute() -> Ranking:
        return search(prepared, method, backbone=backbone, seed=seed, fields=fields, method_options=method_options,
                      backbone_options=backbone_options, train=train)

    if cache_dir is None:
        return compute(), True
    dep = depends_on_backbone(method)
    opts = config_to_dict(config_from_dict(SELECTORS.get(method).Config, dict(method_options or {}), where="method"))
    key: dict[str, Any] = {"method": method, "backbone": backbone if dep else None, "seed": seed,
                           "fields": list(fields), "method_options": opts, "data": prepared.meta.get("key")}
    if dep:  # a deep method trains the backbone: its ranking depends on how
        key.update(train=train_key(train), backbone_options=dict(backbone_options or {}))
    value, searched = cached(cache_dir, "rankings", f"{method}-{backbone if dep else 'any'}-seed{seed}", key,
                             lambda: asdict(compute()))
    return Ranking(**value), searched


def cached_retrain(cache_dir: Path | None, prepared: Prepared, fields: Sequence[str], *, backbone: str, seed: int,
                   backbone_options: dict[str, Any] | None, train: TrainConfig) -> tuple[dict[str, float], bool]:
    """:func:`retrain`, through the retrains cache when ``cache_dir`` is given: ``(metrics, trained)``."""

    def compute() -> dict[str, float]:
        return retrain(prepared, fields, backbone=backbone, seed=seed, backbone_options=backbone_options, train=train)

    if cache_dir is None:
        return compute(), True
    key = {"backbone": backbone, "seed": seed, "fields": list(fields), "train": train_key(train),
           "backbone_options": dict(backbone_options or {}), "data": prepared.meta.get("key")}
    return cached(cache_dir, "retrains", f"{backbone}-seed{seed}", key, compute)


# ---------------------------------------------------------------------------------------------
# one cell


def run(
    cell: SelectionRun,
    prepared: Prepared,
    *,
    method_options: dict[str, Any] | None = None,
    backbone_options: dict[str, Any] | None = None,
    train: TrainConfig = ERASE_TRAIN,
    out_dir: Path | None = None,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> tuple[list[ResultRow], Ranking]:
    """Search, then retrain on the top-k for every k of ``cell.k``; returns rows and the ranking.

    ``out_dir`` receives ``results.csv``, ``ranking.json`` and ``run.json`` (configs, timings,
    per-k metrics and epochs, what came from the caches). ``cache_dir``: share searches and
    retrains with other cells through the caches there (see the module docstring); without it a
    field set that several k give is still trained once.
    """
    from tqdm.auto import tqdm

    fields = resolve_fields(prepared, cell.fields)
    ks = cell.k or parse_k_grid("all", len(fields))
    for k in ks:
        if not 1 <= k <= len(fields):
            raise ConfigError(f"k={k} is out of range: there are F={len(fields)} candidate fields")
    t0 = time.perf_counter()
    ranking, searched = cached_search(cache_dir, prepared, cell.method, backbone=cell.backbone, seed=cell.seed,
                                      fields=fields, method_options=method_options,
                                      backbone_options=backbone_options, train=train)
    per_k: dict[int, dict[str, float]] = {}
    done: dict[tuple[str, ...], dict[str, float]] = {}
    trained = 0
    for k in tqdm(ks, desc=f"{cell.method}/{cell.backbone} retrain", disable=not progress, leave=False):
        chosen = tuple(f for f in fields if f in set(ranking.top_k(k)))
        if chosen not in done:
            done[chosen], ran = cached_retrain(cache_dir, prepared, chosen, backbone=cell.backbone, seed=cell.seed,
                                               backbone_options=backbone_options, train=train)
            trained += ran
        per_k[k] = {**done[chosen], "fields": list(chosen)}  # type: ignore[dict-item]
    rows = cell_rows(cell.dataset, cell.method, cell.backbone, cell.seed, ks, per_k)
    if out_dir is not None:
        write_results(out_dir / "results.csv", rows)
        atomic_write_text(out_dir / "ranking.json", ranking.to_json())
        info = {"task": TASK_NAME, **asdict(cell), "k": list(ks), "train_config": config_to_dict(train),
                "method_options": method_options or {}, "backbone_options": backbone_options or {},
                "data_key": prepared.meta.get("key"), "version": recwise.__version__,
                "wall_seconds": time.perf_counter() - t0, "search_seconds": ranking.search_seconds,
                "searched": searched, "retrains_run": trained, "retrains_reused": len(ks) - trained,
                "cache_dir": str(cache_dir) if cache_dir is not None else None,
                "per_k": {str(k): v for k, v in per_k.items()}, "threads": torch.get_num_threads()}
        atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=list))
    return rows, ranking
