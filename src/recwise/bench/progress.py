"""How far each cell of a `recwise bench` folder has got: ``recwise progress DIR``.

A long grid (SIGMA's converged table: hours per cell) is often stopped and resumed. Its finished
cells are in ``results.csv``; the unfinished ones live only in their training checkpoints
(``cells/<model>/seed<k>/**/checkpoint/state.json``, written after every epoch). This module reads
both and says, per cell: done / failed / training (stopped or running) / not started, the epochs
trained, the best epoch and its validation score, the epochs since the best against the patience,
and the mean training seconds per epoch; with ``metrics``, also each finished cell's test figures
(from its own ``results.csv``). It reads; it writes nothing and loads no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recwise.errors import DataError
from recwise.results import read_results

__all__ = ["CellProgress", "PhaseProgress", "format_progress", "read_progress"]


@dataclass(frozen=True)
class PhaseProgress:
    """One training checkpoint of a cell (most cells have one; PAD's phases have one each)."""

    name: str  # the checkpoint folder relative to the cell ("checkpoint", "phase1/checkpoint")
    epochs: int  # epochs trained
    best_epoch: int  # 1-based; 0 before the first epoch
    best_val: float
    last_val: float
    since_best: int  # epochs without improvement since the best
    patience: int | None  # None in checkpoints written before it was recorded
    max_epochs: int | None
    finished: bool  # early-stopped or at the epoch limit
    seconds_per_epoch: float  # mean training seconds per epoch (validation excluded)


@dataclass(frozen=True)
class CellProgress:
    path: str  # relative to cells/, e.g. "sigma/seed0"
    status: str  # done | failed | training | not started
    reason: str
    wall_seconds: float | None  # of a done or failed cell
    phases: tuple[PhaseProgress, ...]
    test: tuple[tuple[str, float], ...] = ()  # (metric, value) of a done cell, as read_progress was asked


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):  # missing or half-written, as the runner treats it
        return None
    return data if isinstance(data, dict) else None


def _phase(state_file: Path, name: str) -> PhaseProgress | None:
    state = _read_json(state_file)
    if state is None or not isinstance(state.get("history"), list):
        return None
    history = state["history"]
    seconds = [float(h.get("train_seconds", 0.0)) for h in history]
    best = int(state.get("best_epoch", -1))
    return PhaseProgress(
        name=name,
        epochs=len(history),
        best_epoch=best + 1,
        best_val=float(state.get("best_score", float("nan"))),
        last_val=float(history[-1]["val"]) if history else float("nan"),
        since_best=int(state.get("bad", 0)),
        patience=state.get("patience"),
        max_epochs=state.get("max_epochs"),
        finished=bool(state.get("finished", False)),
        seconds_per_epoch=sum(seconds) / len(seconds) if seconds else float("nan"),
    )


def _test_values(cell_dir: Path, metrics: tuple[str, ...], segment: str,
                 seen: set[tuple[str, str]]) -> tuple[tuple[str, float], ...]:
    if not metrics or not (cell_dir / "results.csv").is_file():
        return ()
    tests = [r for r in read_results(cell_dir / "results.csv") if r.split == "test"]
    seen.update((r.segment, r.metric) for r in tests)
    got = {r.metric: r.value for r in tests if r.segment == segment}
    return tuple((m, got.get(m, float("nan"))) for m in metrics)


def read_progress(out: Path, metrics: tuple[str, ...] = (), segment: str = "all") -> list[CellProgress]:
    """Every cell folder under ``out/cells``, sorted by path (seeds numerically); with ``metrics``, each done
    cell's test value of each on ``segment`` (nan where its ``results.csv`` has none)."""
    out = Path(out)
    cells = out / "cells"
    if not cells.is_dir():
        raise DataError(f"{out}: no cells/ folder; is it the --out folder of a `recwise bench` run?")
    found = [d for d in cells.rglob("seed*") if d.is_dir() and d.name[4:].isdigit()]
    rows: list[CellProgress] = []
    seen: set[tuple[str, str]] = set()  # (segment, metric) of the finished cells' test rows
    for d in found:
        rec = _read_json(d / "cell.json") or {}
        # one state per checkpoint folder: the folder's own, else the copy a kill during the swap left
        live: dict[Path, Path] = {}
        for s in sorted(d.rglob("state.json"), key=lambda s: s.as_posix()):
            if s.parent.name.startswith("."):  # a checkpoint being written
                continue
            folder = s.parent.with_name(s.parent.name.removesuffix(".old"))
            if s.parent == folder or folder not in live:
                live[folder] = s
        phases = tuple(p for folder, s in live.items()
                       if (p := _phase(s, folder.relative_to(d).as_posix())) is not None)
        status = rec.get("status")
        if status not in ("done", "failed"):
            status = "training" if phases else "not started"
        rows.append(CellProgress(d.relative_to(cells).as_posix(), str(status), str(rec.get("reason", "")),
                                 rec.get("wall_seconds") if rec.get("status") in ("done", "failed") else None,
                                 phases, _test_values(d, metrics, segment, seen) if status == "done" else ()))
    if seen:  # a misspelt name would otherwise print a column of dashes
        if segment not in {seg for seg, _ in seen}:
            raise DataError(f"{out}: no finished cell has test segment {segment!r}; they have "
                            f"{', '.join(sorted({seg for seg, _ in seen}))}")
        for m in metrics:
            if (segment, m) not in seen:
                raise DataError(f"{out}: no finished cell has test metric {m!r} on segment {segment!r}; they have "
                                f"{', '.join(sorted({k for seg, k in seen if seg == segment}))}")

    def order(c: CellProgress) -> tuple[Any, ...]:
        head, _, seed = c.path.rpartition("/seed")
        return (head, int(seed) if seed.isdigit() else 0)

    return sorted(rows, key=order)


def _num(x: float, digits: int = 4) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def format_progress(rows: list[CellProgress], metrics: tuple[str, ...] = (), segment: str = "all") -> str:
    """A markdown table, one line per cell and training phase; ``metrics`` add a test column each (the values
    :func:`read_progress` read for them, on the last line of a cell)."""
    extra = [f"test {m}" + ("" if segment == "all" else f" {segment}") for m in metrics]
    lines = ["| cell | status | epochs | best epoch | best val | last val | since best / patience | s/epoch |"
             + "".join(f" {e} |" for e in extra),
             "|---|---|---|---|---|---|---|---|" + "---|" * len(extra)]

    def tested(c: CellProgress, last: bool) -> str:
        values = dict(c.test) if last else {}
        return "".join(f" {_num(values.get(m, float('nan')))} |" for m in metrics)

    for c in rows:
        status = c.status + (f" ({c.reason})" if c.status == "failed" and c.reason else "")
        if not c.phases:
            lines.append(f"| {c.path} | {status} | - | - | - | - | - | - |" + tested(c, True))
            continue
        for i, p in enumerate(c.phases):
            name = c.path if p.name == "checkpoint" else f"{c.path} {p.name.removesuffix('/checkpoint')}"
            st = status if c.status != "training" else ("trained" if p.finished else "training")
            epochs = f"{p.epochs}" + (f"/{p.max_epochs}" if p.max_epochs else "")
            pat = f"{p.since_best}/{p.patience}" if p.patience is not None else f"{p.since_best}"
            lines.append(f"| {name} | {st} | {epochs} | {p.best_epoch} | {_num(p.best_val)} | {_num(p.last_val)} "
                         f"| {pat} | {_num(p.seconds_per_epoch, 1)} |" + tested(c, i == len(c.phases) - 1))
    return "\n".join(lines)
