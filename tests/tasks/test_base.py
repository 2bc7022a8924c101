"""The Task protocol (recwise.tasks.base): registry, --set scopes, and the same numbers at any thread
count for every task in deterministic mode (`recwise run <task> --deterministic`)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from recwise.cli import main
from recwise.errors import ConfigError
from recwise.tasks.base import TASKS, Task, split_scopes
from tests.fixtures.seq import write_atomic_with_items

FAMILIES = {"msr", "sequential", "selection", "pad", "llmers"}


def test_every_family_folder_is_a_registered_task() -> None:
    assert set(TASKS.names()) >= FAMILIES
    for name in TASKS.names():
        task = TASKS.get(name)
        assert isinstance(task, Task) and task.name == name and task.units()
    with pytest.raises(ConfigError, match="did you mean 'msr'"):
        TASKS.get("mrs")


def test_split_scopes_splits_on_the_first_dot() -> None:
    got = split_scopes({"train.lr": "1e-3", "method.lasso.alpha": "0.1", "epochs": "3"}, ("train", "method"),
                       bare="train")
    assert got == {"train": {"lr": "1e-3", "epochs": "3"}, "method": {"lasso.alpha": "0.1"}}
    with pytest.raises(ConfigError, match="must start with one of 'train.', 'method.'"):
        split_scopes({"modle.x": "1"}, ("train", "method"))
    with pytest.raises(ConfigError):
        split_scopes({"epochs": "3"}, ("train",))  # no bare scope: a key needs one


def _atomic(folder: Path) -> None:
    write_atomic_with_items(folder)


SEQ_TINY = ["--set", "model.n_layers=1", "--set", "model.hidden_size=16", "--set", "model.n_heads=1",
            "--set", "model.inner_size=32"]
PAD_TINY = [x for k, v in {"hidden_size": 16, "n_layers": 1, "n_heads": 1, "inner_size": 32, "max_len": 6,
                           "text_layers": 1, "mmd_group": 4}.items() for x in ("--set", f"model.{k}={v}")]


def _cases(raw: Path, ml100k: Path) -> dict[str, list[str]]:
    return {
        "msr": ["run", "msr", "--data-dir", str(ml100k), "--model", "mmoe", "--epochs", "1"],
        "sequential": ["run", "sequential", "--data-dir", str(raw), "--model", "sasrec", "--epochs", "2", *SEQ_TINY],
        "selection": ["run", "selection", "--data-dir", str(ml100k), "--max-rows", "20000", "--method", "autofield",
                      "--backbone", "deepfm", "--k", "3,all", "--epochs", "1"],
        "pad": ["run", "pad", "--data-dir", str(raw), "--epochs", "1", "--set", "text.encoder=hash", *PAD_TINY,
                "--set", "train.batch_size=32"],
        "llmers": ["run", "llmers", "--data-dir", str(raw), "--method", "plain", "--epochs", "2", *SEQ_TINY,
                   "--set", "data.max_len=8"],
    }


def _rows(path: Path) -> dict[tuple[str, ...], str]:
    with open(path) as fh:
        return {(r["model"], r["split"], r["segment"], r["metric"]): r["value"] for r in csv.DictReader(fh)}


@pytest.mark.parametrize("task", sorted(FAMILIES))
def test_every_task_gives_the_same_numbers_at_1_and_2_threads(task: str, tmp_path: Path, ml100k_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path / "home"))
    raw = tmp_path / "raw"
    _atomic(raw)
    cmd = _cases(raw, ml100k_dir)[task]
    before = torch.get_num_threads()
    try:
        outs = {}
        for threads in (1, 2):
            out = tmp_path / f"t{threads}"
            assert main(["--quiet", "--threads", str(threads), *cmd, "--deterministic", "--out", str(out)]) == 0
            outs[threads] = out
    finally:
        torch.set_num_threads(before)
    one, two = _rows(outs[1] / "results.csv"), _rows(outs[2] / "results.csv")
    assert one and one == two
    if task == "msr":  # the per-row outputs too, bit for bit
        a, b = (np.load(o / "test_predictions.npz")["prob"] for o in (outs[1], outs[2]))
        assert np.array_equal(a, b)
