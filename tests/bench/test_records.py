"""The kept grid folders (benchmarks/records/): every finished cell there must still be the cell that its
grid's command builds now, or re-running the command would silently train it again (hours for SIGMA)
and the docs' tables would no longer come from the code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from recwise.cli import build_parser
from recwise.metrics.ranking import rank_gains
from recwise.tasks.base import get_task

RECORDS = Path(__file__).resolve().parents[2] / "benchmarks" / "records"

# folder -> the grid's command-line options (its README gives the full command)
GRIDS = {
    "seq-sigma-paper": ["bench", "sequential", "--dataset", "ml-100k", "--preset", "sigma-paper"],
    "seq-sigma-paper-corrected": ["bench", "sequential", "--dataset", "ml-100k", "--preset", "sigma-paper",
                                  "--set", "model.gate=corrected"],
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
        _check_test_ranks(cdir, rows)


def _check_test_ranks(cdir: Path, rows: list[dict]) -> None:
    """A sequential cell's test_ranks.npz (what `recwise compare` bootstraps over) gives its test metrics."""
    if rows[0]["task"] != "sequential":
        return
    with np.load(cdir / "test_ranks.npz") as d:
        ranks, length = d["rank"], d["item_len"]
    groups = {"all": np.ones(len(ranks), dtype=bool)}
    for r in rows:
        if r["split"] == "test" and r["metric"] != "users" and r["segment"] not in groups:
            lo, _, hi = r["segment"].removeprefix("len=").partition("-")
            groups[r["segment"]] = (length >= float(lo)) & (length < float(hi))
    checked = 0
    for r in rows:
        gains = rank_gains(ranks[groups[r["segment"]]], r["metric"]) if r["split"] == "test" else None
        if gains is not None and len(gains):
            assert f"{gains.mean():.6f}" == r["value"], f"{cdir}: test {r['metric']} ({r['segment']})"
            checked += 1
    assert checked >= 18, cdir  # 9 metrics on all and on each non-empty length group
