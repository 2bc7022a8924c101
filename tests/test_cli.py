"""The CLI contract other tools rely on: commands, results.csv columns, one-line errors, resumable grids."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recwise.cli import main
from recwise.registry import list_models
from recwise.results import COLUMNS


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_models_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "msr"]) == 0
    assert capsys.readouterr().out.split() == list_models("msr")


def test_run_writes_results_and_prints_scenarios(ml100k_dir: Path, rw_home: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["--quiet", "run", "msr", "--dataset", "ml-100k", "--model", "sharedbottom", "--seed", "1",
                 "--epochs", "2", "--data-dir", str(ml100k_dir), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "scenario=2" in printed and "auc" in printed
    rows = _read(out / "results.csv")
    assert tuple(rows[0]) == COLUMNS
    test_all = {r["metric"]: float(r["value"]) for r in rows if r["split"] == "test" and r["segment"] == "all"}
    assert 0.6 < test_all["auc"] < 1.0 and test_all["logloss"] > 0
    assert {r["segment"] for r in rows} == {"all", "scenario=0", "scenario=1", "scenario=2"}
    assert {r["seed"] for r in rows} == {"1"} and (out / "model.safetensors").exists()


def _broken_copy(src: Path, dst: Path, fix) -> Path:  # noqa: ANN001
    shutil.copytree(src, dst)
    inter = dst / "ml-100k.inter" if (dst / "ml-100k.inter").exists() else dst / "u.data"
    inter.write_text(fix(inter.read_text()))
    return dst


@pytest.mark.parametrize(
    ("fix", "pattern"),
    [
        (lambda t: "", "is empty"),
        (lambda t: t.replace("\t3\t", "\tthree\t", 1), "numeric|integer"),
        (lambda t: t.replace("rating:float", "stars:float", 1).replace("\t3\t", "\tx\t", 0), "lacks column|rating"),
    ],
)
def test_bad_raw_files_give_one_line_errors(ml100k_dir: Path, rw_home: Path, tmp_path: Path, fix, pattern: str) -> None:  # noqa: ANN001
    if not (ml100k_dir / "ml-100k.inter").exists():
        pytest.skip("needs the RecBole atomic layout")
    bad = _broken_copy(ml100k_dir, tmp_path / "bad", fix)
    proc = subprocess.run([sys.executable, "-m", "recwise", "run", "msr", "--model", "lr", "--epochs", "1",
                           "--data-dir", str(bad), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    import re

    assert re.search(pattern, lines[0]) and str(bad) in lines[0]
    prepared = rw_home / "prepared"
    assert not prepared.exists() or list(prepared.iterdir()) == []  # nothing half-written


def test_bad_option_is_one_line_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "msr", "--model", "mmoe", "--set", "model.expert_dim=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'expert_dims'" in err and len(err.splitlines()) == 1
    assert main(["run", "msr", "--model", "stra"]) == 2
    assert "did you mean 'star'" in capsys.readouterr().err


def test_missing_data_dir_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "msr", "--model", "lr", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "recwise data download ml-100k" in capsys.readouterr().err


def test_bench_is_resumable_and_records_failures(ml100k_dir: Path, rw_home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import recwise.tasks.msr.protocol as msr

    out = tmp_path / "bench"
    args = ["--quiet", "bench", "msr", "--models", "lr,sharedbottom", "--seeds", "2", "--epochs", "1",
            "--data-dir", str(ml100k_dir), "--out", str(out)]
    real_run = msr.run

    def flaky(cell, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if cell.model == "sharedbottom" and cell.seed == 1:
            raise RuntimeError("worker lost")
        return real_run(cell, *a, **k)

    monkeypatch.setattr(msr, "run", flaky)
    assert main(args) == 1  # a failed cell: recorded, the rest go on
    text = capsys.readouterr()
    assert "sharedbottom seed 1 failed: RuntimeError: worker lost" in text.err
    assert "3 cells run, 0 reused, 1 failed" in text.out
    assert "worker lost" in (out / "cells" / "sharedbottom" / "seed1" / "error.txt").read_text()
    assert "Failed cells" in (out / "results.md").read_text()

    monkeypatch.setattr(msr, "run", real_run)
    assert main(args) == 0  # only the failed cell runs again
    assert "1 cells run, 3 reused, 0 failed" in capsys.readouterr().out
    rows = _read(out / "results.csv")
    assert {(r["model"], r["seed"]) for r in rows} == {("lr", "0"), ("lr", "1"),
                                                        ("sharedbottom", "0"), ("sharedbottom", "1")}
    md = (out / "results.md").read_text()
    assert "± " in md and "| sharedbottom | 2 |" in md


def test_bench_seeds_split_over_commands(ml100k_dir: Path, rw_home: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """--seeds A-B or A,B runs just those seeds (one machine or process each); the N form then reuses them."""
    out = tmp_path / "bench"
    base = ["--quiet", "bench", "msr", "--models", "lr", "--epochs", "1", "--data-dir", str(ml100k_dir),
            "--out", str(out), "--store", "none"]
    assert main([*base, "--seeds", "1-2"]) == 0
    assert "2 cells run, 0 reused" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "cells" / "lr").iterdir()) == ["seed1", "seed2"]
    assert main([*base, "--seeds", "3", "--finished-only"]) == 0  # the partial table; runs nothing
    assert "0 cells run, 2 reused, 0 failed, 1 not run (--finished-only)" in capsys.readouterr().out
    assert {r["seed"] for r in _read(out / "results.csv")} == {"1", "2"} and "| lr | 2 |" in (
        out / "results.md").read_text()
    assert main([*base, "--seeds", "3"]) == 0
    assert "1 cells run, 2 reused" in capsys.readouterr().out
    assert {r["seed"] for r in _read(out / "results.csv")} == {"0", "1", "2"}
    assert main([*base, "--seeds", "3"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main([*base, "--seeds", "2,0"]) == 0
    cap = capsys.readouterr()
    assert "0 cells run, 2 reused" in cap.out
    assert "holds this run's cells only; 1 finished cell(s) of other runs" in cap.err and "(lr/seed1)" in cap.err
    assert main([*base, "--seeds", "2-2", "--finished-only"]) == 0  # one seed alone
    assert {r["seed"] for r in _read(out / "results.csv")} == {"2"}
    assert "2 finished cell(s) of other runs" in capsys.readouterr().err
    for bad, message in (("0", "one seed alone is A-A, e.g. 0-0); got 0"), ("1-x", "option --seeds takes N, A-B"),
                         ("1,1", "none negative or repeated"), ("3-1", "at least one seed")):
        assert main([*base, "--seeds", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err


def test_building_the_cli_loads_no_heavy_library() -> None:
    """Every task's package and command group is imported to build the parser; none may pull torch in
    (a fully cached `recwise llm generate` must not pay for it)."""
    code = ("import sys\nfrom recwise.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('torch', 'transformers', 'llama_cpp', 'sentence_transformers', 'ray') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
