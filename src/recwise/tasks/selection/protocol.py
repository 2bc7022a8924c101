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
from collections.abc import Iterator, Sequence
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
    search_cpu_seconds: float = 0.0  # process CPU time: the wall time on a quiet machine at 1 thread

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
    t0, c0 = time.perf_counter(), time.process_time()
    sel.fit(_table(prepared, "train", fields), _table(prepared, "val", fields))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Ranking(method, backbone if depends_on_backbone(method) else None, seed, list(sel.fields_),
                   [float(s) for s in sel.scores_], list(sel.ranking_), sel.family, sel.granularity, seconds,
                   config_to_dict(sel.config), cpu)


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


# ================================================================================== the bench

ERASE_METHODS = ("lasso", "gbdt", "rf", "xgboost", "permutation", "autofield", "adafs", "optfs", "lpfs", "shark",
                 "sfs")
ERASE_BACKBONES = ("widedeep", "deepfm", "dcn", "fibinet")


@dataclass
class BenchResult:
    rows: list[ResultRow]
    rankings: dict[str, Ranking]
    failed: list[str]
    searches_run: int
    retrains_run: int
    retrains_reused: int
    wall_seconds: float


def _ranking_name(method: str, backbone: str | None, seed: int) -> str:
    return f"{method}-{backbone or 'any'}-seed{seed}"


def _init_worker() -> None:
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _search_job(args: tuple) -> tuple[str, Ranking | None, str]:
    name, prepared, method, backbone, seed, fields, mopts, bopts, train = args
    try:
        r = search(prepared, method, backbone=backbone or "mlp", seed=seed, fields=fields, method_options=mopts,
                   backbone_options=bopts, train=train)
        return name, r, ""
    except Exception as exc:  # noqa: BLE001 - one failing method must not stop the grid
        return name, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _retrain_job(args: tuple) -> tuple[str, dict[str, float] | None, str]:
    key, prepared, fields, backbone, seed, bopts, train = args
    try:
        return key, retrain(prepared, fields, backbone=backbone, seed=seed, backbone_options=bopts, train=train), ""
    except Exception as exc:  # noqa: BLE001
        return key, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _run_jobs(fn, jobs: list[tuple], workers: int, bar) -> Iterator[tuple]:  # noqa: ANN001
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
            bar.update(1)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        for fut in as_completed(futures):
            yield fut.result()
            bar.update(1)


def bench(
    prepared: Prepared,
    dataset: str,
    *,
    methods: Sequence[str],
    backbones: Sequence[str],
    k: Sequence[int],
    seeds: Sequence[int],
    out_dir: Path,
    fields: Sequence[str] | None = None,
    method_options: dict[str, dict[str, Any]] | None = None,
    backbone_options: dict[str, Any] | None = None,
    train: TrainConfig = ERASE_TRAIN,
    workers: int = 1,
    progress: bool = True,
) -> BenchResult:
    """Every (method, backbone, seed) cell over the k grid, resumable from ``out_dir``.

    Writes ``rankings/<method>-<backbone|any>-seed<s>.json`` (one per search: a method that does
    not use a backbone is searched once per seed), ``retrains.jsonl`` (one line per trained
    field set: backbone, seed, fields, metrics), ``results.csv``, ``results.md`` and
    ``auc_vs_k.html``. A rerun with the same options reuses every ranking and retrain on disk;
    other options in the same folder are a ConfigError.
    """
    from tqdm.auto import tqdm

    from recwise.config import config_hash
    from recwise.results import atomic_write_text, write_results

    t0 = time.perf_counter()
    cand = resolve_fields(prepared, fields)
    ks = tuple(sorted(set(k)))
    for kk in ks:
        if not 1 <= kk <= len(cand):
            raise ConfigError(f"k={kk} is out of range: there are F={len(cand)} candidate fields")
    for m in methods:
        depends_on_backbone(m)  # unknown -> ConfigError
    for b in backbones:
        get_model("ctr", b)
    method_options = {m: dict((method_options or {}).get(m, {})) for m in methods}
    for m in method_options:
        if m not in methods and method_options[m]:
            raise ConfigError(f"options given for method '{m}', which is not in --methods")
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = config_hash(train, backbone_options or {}, {"data": prepared.meta.get("key"), "fields": cand})
    state = out_dir / "bench.json"
    if state.exists():
        old = json.loads(state.read_text())
        if old.get("fingerprint") != fingerprint:
            raise ConfigError(f"{out_dir} holds results made with other train/backbone options or data; "
                              f"use another --out or delete it")
    atomic_write_text(state, json.dumps({"fingerprint": fingerprint, "dataset": dataset,
                                         "train_config": config_to_dict(train),
                                         "backbone_options": backbone_options or {}, "fields": cand}, indent=1))
    rank_dir = out_dir / "rankings"
    rank_dir.mkdir(exist_ok=True)

    # -- 1. searches
    wanted: dict[str, tuple[str, str | None, int]] = {}
    for s in seeds:
        for m in methods:
            for b in (backbones if depends_on_backbone(m) else [None]):
                wanted[_ranking_name(m, b, s)] = (m, b, s)
    rankings: dict[str, Ranking] = {}
    jobs = []
    for name, (m, b, s) in wanted.items():
        path = rank_dir / f"{name}.json"
        if path.exists():
            r = Ranking.from_json(path.read_text())
            wanted_opts = config_to_dict(config_from_dict(SELECTORS[m].Config, method_options[m], where="method"))
            if r.fields == cand and r.options == json.loads(json.dumps(wanted_opts, default=list)):
                rankings[name] = r
                continue
        jobs.append((name, prepared, m, b, s, cand, method_options[m], backbone_options, train))
    failed: list[str] = []
    retrain_file = out_dir / "retrains.jsonl"
    done: dict[str, dict[str, float]] = {}
    if retrain_file.exists():
        for line in retrain_file.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["key"]] = rec["metrics"]
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by a kill
    # a rough total for the bar: searches + at most one retrain per (cell, k)
    n_cells = len(methods) * len(backbones) * len(seeds)
    bar = tqdm(total=len(jobs) + n_cells * len(ks), desc=f"selection {dataset}", disable=not progress)
    for name, r, err in _run_jobs(_search_job, jobs, workers, bar):
        if r is None:
            failed.append(f"search {name}: {err}")
            continue
        rankings[name] = r
        atomic_write_text(rank_dir / f"{name}.json", r.to_json())

    # -- 2. retrains (one per distinct backbone, seed and field set)
    cells: list[tuple[str, str, int, Ranking]] = []
    for s in seeds:
        for m in methods:
            for b in backbones:
                name = _ranking_name(m, b if depends_on_backbone(m) else None, s)
                if name in rankings:
                    cells.append((m, b, s, rankings[name]))
    todo: dict[str, tuple] = {}
    reused = 0
    for m, b, s, r in cells:
        for kk in ks:
            chosen = [f for f in cand if f in set(r.top_k(kk))]
            key = retrain_key(b, s, chosen)
            if key in done or key in todo:
                reused += 1
                bar.update(1)
                continue
            todo[key] = (key, prepared, chosen, b, s, backbone_options, train)
    with open(retrain_file, "a", encoding="utf-8") as fh:
        for key, metrics, err in _run_jobs(_retrain_job, list(todo.values()), workers, bar):
            if metrics is None:
                failed.append(f"retrain {key}: {err}")
                continue
            done[key] = metrics
            fh.write(json.dumps({"key": key, "metrics": metrics}) + "\n")
            fh.flush()
    bar.close()

    # -- 3. rows, tables, plot
    rows: list[ResultRow] = []
    for m, b, s, r in cells:
        per_k = {}
        for kk in ks:
            key = retrain_key(b, s, [f for f in cand if f in set(r.top_k(kk))])
            if key in done:
                per_k[kk] = done[key]
        if len(per_k) == len(ks):
            rows.extend(cell_rows(dataset, m, b, s, ks, per_k))
    write_results(out_dir / "results.csv", rows)
    atomic_write_text(out_dir / "results.md", summary(rows, ks, dataset, failed))
    atomic_write_text(out_dir / "auc_vs_k.html", plot_html(rows, dataset))
    return BenchResult(rows, rankings, failed, len(jobs), len(todo), reused, time.perf_counter() - t0)


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def curves(rows: Sequence[ResultRow], split: str = "test", metric: str = "auc") -> dict[str, dict[int, list[float]]]:
    """model ("backbone+method") -> k -> values over seeds."""
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r.split == split and r.metric == metric and r.segment.startswith("k="):
            out.setdefault(r.model, {}).setdefault(int(r.segment[2:]), []).append(r.value)
    return out


def summary(rows: Sequence[ResultRow], ks: Sequence[int], dataset: str, failed: Sequence[str] = ()) -> str:
    """Markdown: test AUKC per method x backbone, test AUC per k, and the top-half check."""
    aukcs: dict[str, list[float]] = {}
    for r in rows:
        if r.split == "test" and r.segment == "aukc":
            aukcs.setdefault(r.model, []).append(r.value)
    models = sorted(aukcs)
    backbones = sorted({m.split("+", 1)[0] for m in models})
    methods = sorted({m.split("+", 1)[1] for m in models})
    lines = [f"# feature selection on {dataset}: test AUKC (k = {', '.join(map(str, ks))}), mean ± std over seeds",
             "", "| method | " + " | ".join(backbones) + " |", "|---|" + "---|" * len(backbones)]
    for meth in methods:
        cells = []
        for b in backbones:
            m, s = _mean_std(aukcs.get(f"{b}+{meth}", []))
            cells.append(f"{m:.4f} ± {s:.4f}" if not np.isnan(m) else "-")
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    cur = curves(rows)
    lines += ["", "## test AUC per k (mean over seeds)", "",
              "| backbone+method | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for model in sorted(cur):
        lines.append(f"| {model} | " + " | ".join(f"{_mean_std(cur[model].get(k, []))[0]:.4f}" for k in ks) + " |")
    check = top_half_check(rows, ks)
    if check:
        lines += ["", "## top-half check", ""] + [f"- {c}" for c in check]
    if failed:
        lines += ["", "## failed", ""] + [f"- {f}" for f in failed]
    return "\n".join(lines) + "\n"


def top_half_check(rows: Sequence[ResultRow], ks: Sequence[int]) -> list[str]:
    """Per backbone: the best method by mean test AUKC, and its AUC at k = F/2 over its AUC at k = F
    (F = the largest k of the grid; needs F/2 rounded up in the grid)."""
    f = max(ks)
    half = (f + 1) // 2
    if half not in ks or half == f:
        return []
    aukcs: dict[str, list[float]] = {}
    for r in rows:
        if r.split == "test" and r.segment == "aukc":
            aukcs.setdefault(r.model, []).append(r.value)
    cur = curves(rows)
    out = []
    for b in sorted({m.split("+", 1)[0] for m in aukcs}):
        cands = {m: _mean_std(v)[0] for m, v in aukcs.items() if m.startswith(b + "+")}
        best = max(cands, key=lambda m: cands[m])
        a_half, a_all = _mean_std(cur[best][half])[0], _mean_std(cur[best][f])[0]
        out.append(f"{b}: best method by AUKC {best.split('+', 1)[1]} ({cands[best]:.4f}); its top-{half} test AUC "
                   f"{a_half:.4f} = {100 * a_half / a_all:.2f}% of all-{f}-fields AUC {a_all:.4f}")
    return out


def plot_html(rows: Sequence[ResultRow], dataset: str) -> str:
    """Self-contained HTML (plotly inlined): test AUC vs k, one panel per backbone, one line per method."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cur = curves(rows)
    backbones = sorted({m.split("+", 1)[0] for m in cur})
    fig = make_subplots(rows=1, cols=max(len(backbones), 1), subplot_titles=backbones, shared_yaxes=True)
    methods = sorted({m.split("+", 1)[1] for m in cur})
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]
    for col, b in enumerate(backbones, start=1):
        for i, meth in enumerate(methods):
            per_k = cur.get(f"{b}+{meth}")
            if not per_k:
                continue
            kk = sorted(per_k)
            stats = [_mean_std(per_k[k]) for k in kk]
            fig.add_trace(go.Scatter(
                x=kk, y=[s[0] for s in stats], error_y={"type": "data", "array": [s[1] for s in stats]},
                mode="lines+markers", name=meth, legendgroup=meth, showlegend=col == 1,
                line={"color": palette[i % len(palette)]}), row=1, col=col)
        fig.update_xaxes(title_text="k (fields kept)", row=1, col=col)
    fig.update_yaxes(title_text="test AUC", row=1, col=1)
    fig.update_layout(title=f"Feature selection on {dataset}: test AUC vs k (mean ± std over seeds)",
                      template="plotly_white", height=450, width=max(500, 380 * len(backbones)))
    return fig.to_html(include_plotlyjs=True, full_html=True)
