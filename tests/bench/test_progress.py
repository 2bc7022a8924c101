from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from recwise.bench import Cell, run_grid
from recwise.bench.progress import format_progress, read_progress
from recwise.cli import main
from recwise.data.cache import Prepared
from recwise.errors import DataError
from recwise.registry import get_model
from recwise.results import ResultRow
from recwise.tasks.msr import bce_loss
from recwise.train import TrainConfig, Trainer, seed_everything


class Killed(Exception):  # noqa: N818 - a simulated kill, not an error
    pass


def _fit(planted: Prepared, run_dir: Path, scores: list[float], *, epochs: int, patience: int,
         kill_at: int | None = None) -> None:
    """Train mmoe into ``run_dir`` with scripted validation scores; raise Killed at monitor call ``kill_at``."""
    seed_everything(0)
    cls = get_model("msr", "mmoe")
    model = cls(planted.table.schema, cls.Config())
    it: Iterator[float] = iter(scores)
    calls = {"n": 0}

    def monitor(m: torch.nn.Module) -> float:
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise Killed
        return next(it)

    cfg = TrainConfig(epochs=epochs, batch_size=1024, patience=patience, seed=0)
    Trainer(model, cfg, loss_fn=bce_loss, monitor=monitor, run_dir=run_dir, progress=False).fit(
        planted.part("train").tensors())


def _cell(cell: Cell, out_dir: Path, shared: object) -> list[ResultRow]:  # module level, as the runner wants
    if cell.seed == 1:
        raise ValueError("planted failure")
    prepared = shared
    assert isinstance(prepared, Prepared)
    # early-stops: best 0.7 at epoch 2 (1-based), then two epochs without a strict improvement
    _fit(prepared, out_dir, [0.6, 0.7, 0.7, 0.65, 0.9], epochs=8, patience=2)
    return [ResultRow("msr", "planted", cell.model, cell.seed, "test", "all", "auc", 0.7)]


def test_progress_reads_done_failed_and_stopped_cells(planted: Prepared, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grid"
    cells = [Cell("msr", "planted", "mmoe", s) for s in (0, 1)]
    run_grid(cells, _cell, out, shared=planted, store=False, quiet=True)
    # a cell killed while validating its 4th epoch: 3 epochs checkpointed, best at the 2nd
    with pytest.raises(Killed):
        _fit(planted, out / "cells" / "mmoe" / "seed10", [0.5, 0.9, 0.6, 0.8], epochs=50, patience=10, kill_at=4)
    # another killed during the checkpoint swap: only checkpoint.old is left, and it is read
    with pytest.raises(Killed):
        _fit(planted, out / "cells" / "mmoe" / "seed2", [0.5], epochs=50, patience=10, kill_at=2)
    ck = out / "cells" / "mmoe" / "seed2" / "checkpoint"
    ck.rename(ck.with_name("checkpoint.old"))

    rows = read_progress(out)
    assert [r.path for r in rows] == ["mmoe/seed0", "mmoe/seed1", "mmoe/seed2", "mmoe/seed10"]  # seeds numerically
    done, failed, swapped, stopped = rows
    assert done.status == "done" and done.wall_seconds is not None
    (p,) = done.phases
    assert (p.epochs, p.best_epoch, p.best_val, p.since_best, p.patience, p.max_epochs, p.finished) == \
        (4, 2, 0.7, 2, 2, 8, True)
    assert failed.status == "failed" and "planted failure" in failed.reason and failed.phases == ()
    assert swapped.status == "training" and swapped.phases[0].name == "checkpoint" and swapped.phases[0].epochs == 1
    assert stopped.status == "training"
    (p,) = stopped.phases
    assert (p.epochs, p.best_epoch, p.best_val, p.last_val, p.since_best, p.patience, p.max_epochs, p.finished) == \
        (3, 2, 0.9, 0.6, 1, 10, 50, False)
    assert p.seconds_per_epoch > 0

    table = format_progress(rows)
    assert "| mmoe/seed10 | training | 3/50 | 2 | 0.9000 | 0.6000 | 1/10 |" in table
    assert "| mmoe/seed0 | done | 4/8 | 2 | 0.7000 | 0.6500 | 2/2 |" in table
    assert main(["progress", str(out)]) == 0
    printed = capsys.readouterr().out
    assert table in printed and "1 done, 1 failed, 2 training" in printed


def test_progress_of_a_folder_without_cells_is_one_clear_error(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="no cells/ folder"):
        read_progress(tmp_path)
    assert main(["progress", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0]


def test_metrics_add_each_finished_cells_test_figures_and_a_misspelt_one_is_an_error(
        planted: Prepared, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grid"
    run_grid([Cell("msr", "planted", "mmoe", s) for s in (0, 1)], _cell, out, shared=planted, store=False, quiet=True)
    done, failed = read_progress(out, ("auc",))
    assert done.test == (("auc", 0.7),) and failed.test == ()  # the failed cell has no results.csv
    table = format_progress([done, failed], ("auc",))
    assert table.splitlines()[0].endswith("| s/epoch | test auc |")
    assert "| mmoe/seed0 | done | 4/8 | 2 | 0.7000 | 0.6500 | 2/2 |" in table and table.splitlines()[2].endswith(
        "| 0.7000 |")
    assert table.splitlines()[3].endswith("| - | - |")  # failed: no phases, no figure
    with pytest.raises(DataError, match="no finished cell has test metric 'acu' on segment 'all'; they have auc"):
        read_progress(out, ("acu",))
    with pytest.raises(DataError, match="test segment 'scenario=0'; they have all"):
        read_progress(out, ("auc",), "scenario=0")
    assert main(["progress", str(out), "--metrics", "auc"]) == 0
    assert "| test auc |" in capsys.readouterr().out
    assert main(["progress", str(out), "--metrics", "auc,logloss"]) == 2
    assert "'logloss'" in capsys.readouterr().err
