"""A sequential cell killed after a checkpoint and resumed gives the numbers of an uninterrupted run (SIGMA:
dropout, the numba scan and prefix batches all pick up where they stopped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import recwise.train.trainer as trainer_module
from recwise.tasks.sequential import SeqRun, run
from tests.fixtures.seq import planted_sequences


class Killed(Exception):  # noqa: N818 - a simulated kill, not an error
    pass


def test_sigma_killed_after_epoch_one_resumes_to_the_same_numbers(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seqs = planted_sequences(n_users=300, n_items=40, length=15)
    opts = {"train_options": {"epochs": 3, "batch_size": 256}, "data_options": {"examples": "prefix"},
            "model_options": {"hidden_size": 32, "dropout": 0.3}, "progress": False}
    full = run(SeqRun("toy", "sigma", 0), seqs, out_dir=tmp_path / "full", **opts)

    save = trainer_module.save_training_state

    def save_then_die(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        save(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(trainer_module, "save_training_state", save_then_die)
    with pytest.raises(Killed):  # dies right after epoch 0's checkpoint
        run(SeqRun("toy", "sigma", 0), seqs, out_dir=tmp_path / "killed", **opts)
    monkeypatch.setattr(trainer_module, "save_training_state", save)
    resumed = run(SeqRun("toy", "sigma", 0), seqs, out_dir=tmp_path / "killed", resume=True, **opts)

    def values(rows):  # noqa: ANN001, ANN202
        return {(r.split, r.segment, r.metric): r.value for r in rows if r.value == r.value}  # nan: empty groups

    def losses(folder: Path) -> list[tuple[float, float]]:  # every epoch's loss: the toy's metrics saturate
        return [(h["loss"], h["val"]) for h in json.loads((folder / "run.json").read_text())["history"]]

    assert values(resumed) == values(full) and len(values(full)) > 10
    assert losses(tmp_path / "killed") == losses(tmp_path / "full") and len(losses(tmp_path / "full")) == 3
