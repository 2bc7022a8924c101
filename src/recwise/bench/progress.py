"""How far each cell of a `recwise bench` folder has got: ``recwise progress DIR``.

A long grid (SIGMA's converged table: hours per cell) is often stopped and resumed. Its finished
cells are in ``results.csv``; the unfinished ones live only in their training checkpoints
(``cells/<model>/seed<k>/**/checkpoint/state.json``, written after every epoch). This module reads
both and says, per cell: done / failed / training (stopped or running) / not started, the epochs
trained, the best epoch and its validation score, the epochs since the best against the patience,
and the mean training seconds per epoch. It reads; it writes nothing and loads no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recwise.errors import DataError

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


def read_progress(out: Path) -> list[CellProgress]:
    """Every cell folder under ``out/cells``, sorted by path (seeds numerically)."""
    out = Path(out)
    cells = out / "cells"
    if not cells.is_dir():
        raise DataError(f"{out}: no cells/ folder; is it the --out folder of a `recwise bench` run?")
    found = [d for d in cells.rglob("seed*") if d.is_dir() and d.name[4:].isdigit()]
    rows: list[CellProgress] = []
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
                                 phases))

    def order(c: CellProgress) -> tuple[Any, ...]:
        head, _, seed = c.path.rpartition("/seed")
        return (head, int(seed) if seed.isdigit() else 0)

    return sorted(rows, key=order)


def _num(x: float, digits: int = 4) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def format_progress(rows: list[CellProgress]) -> str:
    """A markdown table, one line per cell and training phase."""
    lines = ["| cell | status | epochs | best epoch | best val | last val | since best / patience | s/epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for c in rows:
        status = c.status + (f" ({c.reason})" if c.status == "failed" and c.reason else "")
        if not c.phases:
            lines.append(f"| {c.path} | {status} | - | - | - | - | - | - |")
            continue
        for p in c.phases:
            name = c.path if p.name == "checkpoint" else f"{c.path} {p.name.removesuffix('/checkpoint')}"
            st = status if c.status != "training" else ("trained" if p.finished else "training")
            epochs = f"{p.epochs}" + (f"/{p.max_epochs}" if p.max_epochs else "")
            pat = f"{p.since_best}/{p.patience}" if p.patience is not None else f"{p.since_best}"
            lines.append(f"| {name} | {st} | {epochs} | {p.best_epoch} | {_num(p.best_val)} | {_num(p.last_val)} "
                         f"| {pat} | {_num(p.seconds_per_epoch, 1)} |")
    return "\n".join(lines)
