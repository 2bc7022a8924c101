"""``recwise run llmers`` / ``recwise bench llmers`` through the CLI on a small atomic dataset: a
bench of 1 seed x 2 methods goes through the grid runner and a re-run reuses both cells; a bad
method or option is a one-line error before any data is read; the global --threads reaches torch."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import recwise.tasks.llmers.protocol as protocol
from recwise.cli import main
from tests.fixtures.seq import write_atomic_with_items

TINY = ["--set", "model.n_layers=1", "--set", "model.hidden_size=16", "--set", "model.n_heads=1",
        "--set", "model.inner_size=32", "--set", "data.max_len=8", "--set", "llmrec.budget=0"]


def _atomic(folder: Path) -> None:
    write_atomic_with_items(folder, users=40, n_items=25, lengths=(5, 15))


@pytest.fixture()
def raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path / "home"))
    folder = tmp_path / "raw"
    _atomic(folder)
    return folder


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_bad_method_or_option_is_one_line_before_reading_data(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    nowhere = ["--data-dir", str(tmp_path / "missing")]  # reading data would fail differently
    assert main(["run", "llmers", "--method", "kar-itme", *nowhere]) == 2
    _one_line_error(capsys, "unknown LLMERS method 'kar-itme'", "did you mean 'kar-item'")
    assert main(["bench", "llmers", "--methods", "plain,textinit", *nowhere]) == 2
    _one_line_error(capsys, "'textinit'", "did you mean 'text-init'")
    assert main(["run", "llmers", "--method", "kar", "--set", "kar.item_budgt=3", *nowhere]) == 2
    _one_line_error(capsys, "kar.item_budgt")
    assert main(["run", "llmers", "--set", "encoder.bacth_size=8", *nowhere]) == 2
    _one_line_error(capsys, "encoder.bacth_size")
    assert main(["run", "llmers", "--set", "optim.lr=1", *nowhere]) == 2
    _one_line_error(capsys, "optim.lr")


def test_bench_runs_through_the_grid_and_a_rerun_reuses_every_cell(raw: Path, tmp_path: Path, capsys,  # noqa: ANN001
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "bench"
    cmd = ["bench", "llmers", "--data-dir", str(raw), "--methods", "plain,llmrec", "--seeds", "1", "--epochs", "1",
           *TINY, "--out", str(out), "--store", "none", "--quiet"]
    assert main(cmd) == 0
    stdout = capsys.readouterr().out
    assert "2 cells run, 0 reused, 0 failed" in stdout
    md = (out / "results.md").read_text()
    assert "| sasrec | 1 |" in md and "| sasrec+llmrec | 1 |" in md
    assert "llmrec (seed 0) | 0 | 0 |" in md  # the offline step's cost: no prompt within a zero budget
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["model"] for r in rows} == {"sasrec", "sasrec+llmrec"} and {r["task"] for r in rows} == {"llmers"}
    for m in ("plain", "llmrec"):
        cell_dir = out / "cells" / m / "seed0"
        assert (cell_dir / "cell.json").exists() and (cell_dir / "run.json").exists()

    def must_not_run(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a finished cell ran again")

    monkeypatch.setattr(protocol, "run", must_not_run)
    assert main(cmd) == 0
    stdout = capsys.readouterr().out
    assert "0 cells run, 2 reused, 0 failed" in stdout
    assert (out / "results.md").read_text() == md
    with open(out / "results.csv") as fh:
        assert list(csv.DictReader(fh)) == rows


def test_run_and_the_global_threads_option(raw: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        out = tmp_path / "run"
        # --threads after the task's options (the subcommand's copy of the global flag)
        assert main(["run", "llmers", "--data-dir", str(raw), "--epochs", "1", *TINY, "--out", str(out), "--quiet",
                     "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        stdout = capsys.readouterr().out
        assert "sasrec on ml-100k, seed 0: best epoch 1 of 1" in stdout and "ndcg@10 all:" in stdout
        assert (out / "results.csv").exists() and (out / "model.safetensors").exists()
        # --resume continues from the checkpoint (a finished run trains nothing more)
        assert main(["--threads", "1", "run", "llmers", "--data-dir", str(raw), "--epochs", "1", *TINY,
                     "--out", str(out), "--quiet", "--resume"]) == 0
        # --resume without a checkpoint says so (before the offline steps)
        assert main(["run", "llmers", "--data-dir", str(raw), "--epochs", "1", *TINY, "--out",
                     str(tmp_path / "fresh"), "--quiet", "--resume"]) == 2
        _one_line_error(capsys, "no checkpoint")
    finally:
        torch.set_num_threads(before)
