"""Bring finished runs' ``results.csv`` files (and their failures) into the results store.

A grid folder looks like ``results.csv`` + ``failures.json`` + ``cells/<model>[/<tag>]/seed<k>/``
with ``cell.json`` (grid runner: key, wall time, peak RSS, host, executor) or ``run.json`` (config
hash, version, wall time, and in newer runs ``provenance``: commit, threads, executor,
deterministic mode, library versions). Each cell's rows are appended with the metadata found
there; a field that cannot be known (e.g. peak memory or thread count of an old run) is stored as
NULL. A file
already imported (same path and content) is skipped, so importing twice adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recwise.errors import DataError
from recwise.results import ResultRow, read_results
from recwise.store import ResultStore, provenance_meta

__all__ = ["ImportSummary", "import_results"]


@dataclass(frozen=True)
class ImportSummary:
    path: Path
    rows: int
    cells: int
    failures: int
    skipped: bool  # the same file was imported before


def _json(path: Path) -> dict[str, Any] | list[Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); delete it or re-run the grid to rewrite it") from None


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


# not this process's: what an imported row does not say stays NULL
_UNKNOWN = {"version": None, "git_commit": None, "git_dirty": None, "packages": None, "peak_rss_mb": None,
            "host": None}


def _cell_meta(cells_dir: Path, model: str, seed: int) -> dict[str, Any]:
    """Metadata of one cell from its cell.json / run.json, when the folder is unambiguous."""
    matches = sorted(cells_dir.glob(f"{model}/seed{seed}")) or sorted(cells_dir.glob(f"{model}/*/seed{seed}"))
    if len(matches) != 1:  # no folder, or several tags share model and seed: leave the fields unknown
        return {"config_hash": None, "wall_seconds": None, **_UNKNOWN}
    return _folder_meta(matches[0])


def _folder_meta(folder: Path) -> dict[str, Any]:
    """Metadata of the run whose ``run.json`` / ``cell.json`` lie in ``folder`` (NULL for what they lack)."""
    meta: dict[str, Any] = {"config_hash": None, "wall_seconds": None, **_UNKNOWN}
    run = _json(folder / "run.json") or {}
    cell = _json(folder / "cell.json") or {}
    assert isinstance(run, dict) and isinstance(cell, dict)
    prov = run.get("provenance")
    if isinstance(prov, dict):
        meta.update({k: v for k, v in provenance_meta(prov).items() if v is not None})
    for key in ("executor", "threads", "deterministic"):  # the grid runner's cell.json has these too
        if meta.get(key) is None and cell.get(key) is not None:
            meta[key] = cell[key]
    meta["config_hash"] = cell.get("key") or run.get("config_hash")
    meta["version"] = meta["version"] or run.get("version") or cell.get("version")
    meta["git_commit"] = meta["git_commit"] or run.get("git_commit") or cell.get("git_commit")
    meta["wall_seconds"] = _number(cell.get("wall_seconds")) or _number(run.get("wall_seconds"))
    meta["peak_rss_mb"] = _number(cell.get("peak_rss_mb"))
    meta["host"] = cell.get("host") or None
    return meta


def import_results(store: ResultStore, path: str | Path, *, force: bool = False) -> ImportSummary:
    """Append one ``results.csv`` (plus ``failures.json`` / ``cells/*/error.txt`` beside it) to ``store``."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        raise DataError(f"{path}: no such results file (give a results.csv or the folder holding one)")
    blob = path.read_bytes()
    source = f"import:{path.resolve()}#{hashlib.sha256(blob).hexdigest()[:16]}"
    if not force and store.has_source(source):
        return ImportSummary(path, 0, 0, 0, skipped=True)
    rows = read_results(path)
    by_cell: dict[tuple[str, int], list[ResultRow]] = defaultdict(list)
    for r in rows:
        by_cell[(r.model, r.seed)].append(r)
    cells_dir = path.parent / "cells"
    if cells_dir.is_dir():  # a grid folder: each cell's own files
        batches = [(cell_rows, {**_cell_meta(cells_dir, model, seed), "source": source})
                   for (model, seed), cell_rows in by_cell.items()]
    else:  # one run's folder: its run.json describes every row
        single = _folder_meta(path.parent)
        batches = [(cell_rows, {**single, "source": source}) for cell_rows in by_cell.values()]

    failures: list[tuple[str, str, str, int, str]] = []
    records = _json(path.parent / "failures.json")
    if records is not None:
        if not isinstance(records, list):
            raise DataError(f"{path.parent / 'failures.json'}: expected a list of failed cells")
        for rec in records:
            try:
                failures.append((rec["task"], rec["dataset"], rec["model"], int(rec["seed"]),
                                 rec.get("reason") or "failed"))
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{path.parent / 'failures.json'}: a record lacks task/dataset/model/seed: "
                                f"{str(rec)[:80]}") from None
    elif rows and cells_dir.is_dir():  # an older bench folder: failed cells left error.txt and no results.csv
        task, dataset = rows[0].task, rows[0].dataset
        for err in sorted(cells_dir.glob("*/seed*/error.txt")):
            if (err.parent / "results.csv").exists():
                continue
            seed_text = err.parent.name.removeprefix("seed")
            if seed_text.isdigit():
                reason = (err.read_text(encoding="utf-8", errors="replace").strip().splitlines() or ["failed"])[0]
                failures.append((task, dataset, err.parent.parent.name, int(seed_text), reason))

    store.append_many(batches)
    for task, dataset, model, seed, reason in failures:
        store.append_failure(task, dataset, model, seed, reason, {"source": source, **_UNKNOWN})
    return ImportSummary(path, len(rows), len(batches), len(failures), skipped=False)
