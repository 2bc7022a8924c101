"""Result rows and the files they are written to (``results.csv``, markdown summaries)."""

from __future__ import annotations

import csv
import functools
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import IO, Any

from recwise.errors import DataError

__all__ = ["COLUMNS", "ResultRow", "atomic_open", "atomic_write_text", "mean_std_table", "mean_std_text",
           "read_results", "stamp_run_json", "summary_markdown", "usual_modes", "write_arrays", "write_results"]


def mean_std_text(values: list[float]) -> str:
    """``"mean ± std"`` over seeds (sample std, 4 decimals); the mean alone for one value; ``"-"`` for none."""
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)):.4f}"


def mean_std_table(rows: Iterable[ResultRow], seeds: dict[str, int], metrics: list[str] | tuple[str, ...], *,
                   first: str = "arm", segment: str = "all") -> list[str]:
    """The lines of a markdown table: one line per key of ``seeds`` (a model or arm, in that order), its seed
    count, then each metric's :func:`mean_std_text` over the rows of ``segment``."""
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.segment == segment:
            by[(r.model, r.metric)].append(r.value)
    return [f"| {first} | seeds | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics),
            *(f"| {u} | {n} | " + " | ".join(mean_std_text(by.get((u, m), [])) for m in metrics) + " |"
              for u, n in seeds.items())]


@dataclass(frozen=True)
class ResultRow:
    task: str
    dataset: str
    model: str
    seed: int
    split: str
    segment: str  # "all", "scenario=<i>", "k=<k>", "len=<group>"
    metric: str
    value: float


COLUMNS = tuple(f.name for f in fields(ResultRow))


@functools.cache
def _umask() -> int:
    """The process's umask, read once (reading it means setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask (``mkstemp`` alone gives 0o600)."""
    return 0o666 & ~_umask()


def _new_dir_mode() -> int:
    """The mode ``mkdir()`` gives a new folder: 0o777 less the umask (``mkdtemp`` gives 0o700)."""
    return 0o777 & ~_umask()


def usual_modes(path: Path | str) -> None:
    """Give a file, or a folder and everything under it, the modes ``open()`` and ``mkdir()`` would
    have given (0o666 / 0o777 less the umask). For what was written under a temporary name before a
    rename: ``mkdtemp`` makes 0o700 folders, and ``mkstemp`` and safetensors' ``save_file`` 0o600 files."""
    path = Path(path)
    if path.is_dir():
        os.chmod(path, _new_dir_mode())
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), _new_dir_mode())
            for f in files:
                os.chmod(os.path.join(root, f), _new_file_mode())
    else:
        os.chmod(path, _new_file_mode())


@contextmanager
def atomic_open(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` with the usual mode; on a clean exit, rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, _new_file_mode())
    with os.fdopen(fd, mode, **kwargs) as fh:
        yield fh
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path``, then rename it there, with the usual mode."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def write_arrays(path: Path, **columns: Any) -> None:
    """Per-row outputs (test predictions, test ranks) as one ``.npz``, written to a temporary name, then renamed."""
    import numpy as np

    arrays = {k: np.asarray(v) for k, v in columns.items()}
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy: a key could be allow_pickle


def write_results(path: Path, rows: Iterable[ResultRow]) -> None:
    """Write rows as CSV with the standard columns, atomically."""
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in astuple(r)])
    atomic_write_text(path, buf.getvalue())


def read_results(path: Path) -> list[ResultRow]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise DataError(f"{path}: expected columns {','.join(COLUMNS)}; got {reader.fieldnames}")
            return [
                ResultRow(r["task"], r["dataset"], r["model"], int(r["seed"]), r["split"], r["segment"], r["metric"],
                          float(r["value"]))
                for r in reader
            ]
    except (ValueError, KeyError) as exc:
        raise DataError(f"{path}: malformed results file ({exc}); delete it to rebuild") from None


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, s


_LOWER = re.compile(r"(loss|rmse|mae|mse|error|_km$|^km|distance)", re.IGNORECASE)


def lower_is_better(metric: str) -> bool:
    """Loss-like metrics (logloss, rmse, mae, error, distances) are better when lower; the rest when higher."""
    return bool(_LOWER.search(metric))


def natural_key(text: str) -> tuple[str | int, ...]:
    """Sort key with numbers compared as numbers: ``k=3`` before ``k=10``, ``len=5-20`` before ``len=20-inf``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def _segment_key(segment: str) -> tuple[bool, tuple[str | int, ...]]:
    return segment != "all", natural_key(segment)


def summary_markdown(rows: list[ResultRow], *, split: str = "test",
                     metrics: tuple[str, ...] = ("auc", "logloss")) -> str:
    """A table of mean ± std over seeds: one row per model, one column per (segment, metric)."""
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    seeds: dict[str, set[int]] = defaultdict(set)
    segments: list[str] = []
    for r in rows:
        if r.split != split or r.metric not in metrics:
            continue
        groups[(r.model, r.segment, r.metric)].append(r.value)
        seeds[r.model].add(r.seed)
        if r.segment not in segments:
            segments.append(r.segment)
    segments.sort(key=_segment_key)
    models = sorted(seeds)
    cols = [(s, m) for m in metrics for s in segments]
    # mean ± std per (model, segment, metric); no rows or an empty group (every value NaN) is absent
    stats = {key: ms for key, vals in groups.items() if not math.isnan((ms := _mean_std(vals))[0])}
    best: dict[tuple[str, str], float] = {}
    for s, m in cols:
        means = [stats[(mod, s, m)][0] for mod in models if (mod, s, m) in stats]
        if means:
            best[(s, m)] = min(means) if lower_is_better(m) else max(means)
    lines = ["| model | seeds | " + " | ".join(f"{m} {s}" for s, m in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for mod in models:
        cells = []
        for s, m in cols:
            if (mod, s, m) not in stats:
                cells.append("-")
                continue
            mean, std = stats[(mod, s, m)]
            cell = f"{mean:.4f} ± {std:.4f}"
            cells.append(f"**{cell}**" if best.get((s, m)) == mean else cell)
        lines.append(f"| {mod} | {len(seeds[mod])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def stamp_run_json(path: Path, provenance: dict[str, Any]) -> None:
    """Add ``provenance`` to the ``run.json`` a run wrote at ``path`` (nothing when there is none)."""
    import json

    if not path.exists():
        return
    info = json.loads(path.read_text())
    info["provenance"] = provenance
    atomic_write_text(path, json.dumps(info, indent=1, default=list))
