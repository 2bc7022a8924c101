"""The kept grid folders (benchmarks/records/): every finished cell there must still be the cell that its
grid's command builds now, or re-running the command would silently train it again (hours for SIGMA)
and the docs' tables would no longer come from the code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from recwise.cli import build_parser
from recwise.tasks.base import get_task

RECORDS = Path(__file__).resolve().parents[2] / "benchmarks" / "records"

# folder -> the grid's command-line options (its README gives the full command)
GRIDS = {
    "seq-sigma-paper": ["bench", "sequential", "--dataset", "ml-100k", "--preset", "sigma-paper"],
}


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("cells/**/cell.json"))]


def test_every_kept_folder_is_listed() -> None:
    kept = sorted(p.name for p in RECORDS.iterdir() if p.is_dir())
    assert kept == sorted(GRIDS)
    readme = (RECORDS / "README.md").read_text()
    assert all(f"`{name}/`" in readme and f"--out benchmarks/records/{name}" in readme for name in kept)


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_kept_cells_match_the_current_code(name: str, ml100k_dir: Path, rw_home: Path) -> None:
    folder = RECORDS / name
    records = _records(folder)
    assert records, f"{folder} keeps no cell"
    models = sorted({r["model"] for r in records})
    seeds = sorted({r["seed"] for r in records})
    args = build_parser().parse_args([*GRIDS[name], "--models", ",".join(models),
                                      "--seeds", ",".join(map(str, seeds)), "--data-dir", str(ml100k_dir)])
    task = get_task(args.task_name)
    units = task.expand_units(args.units)
    _, extra = task.load(args, None)
    keys = {c.path: c.key for c in task.cells(args, units, seeds, {**task.options(args, units), **extra})}
    for rec in records:
        cdir = folder / "cells" / rec["path"]
        assert rec["status"] == "done", f"{cdir}: only finished cells are kept"
        assert rec["key"] == keys[rec["path"]], f"{cdir}: its options no longer match the grid's"
        with (cdir / "results.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert {(r["model"], r["seed"]) for r in rows} == {(rec["model"], str(rec["seed"]))}
        run = json.loads((cdir / "run.json").read_text())
        state = json.loads((cdir / "checkpoint" / "state.json").read_text())
        # the checkpoint's state (0-based epochs) is that of the finished training run.json reports
        assert state["finished"] and state["epoch"] + 1 == run["epochs_run"], cdir
        assert state["best_epoch"] == run["best_epoch"], cdir
