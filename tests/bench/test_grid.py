"""The grid runner with the local executor: keys, resume, failure records, measures, store hook, CLI flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recwise.bench import Cell, run_grid
from recwise.cli import main
from recwise.data.cache import Prepared
from recwise.errors import ConfigError
from recwise.results import ResultRow, read_results
from recwise.tasks.base import run_task_cell
from tests.fixtures.seq import write_atomic


def _log_call(cell: Cell, out_dir: Path) -> None:
    with open(out_dir.parents[len(cell.path.split("/"))] / "calls.txt", "a") as fh:
        fh.write(f"{cell.title}\n")


def _calls(out: Path) -> list[str]:
    p = out / "calls.txt"
    return p.read_text().splitlines() if p.exists() else []


def mean_cell(cell: Cell, out_dir: Path, shared: Any) -> list[ResultRow]:
    """A cell that fails while ``options['fail']`` is set and otherwise reports a seeded mean of ``shared``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _log_call(cell, out_dir)
    if cell.options.get("fail") and not (out_dir.parents[2] / "healed").exists():
        raise RuntimeError("planted failure")
    if cell.options.get("bad_option"):
        raise ConfigError("unknown option 'model.lrr'")
    rng = np.random.default_rng(cell.seed)
    value = float(np.mean(shared[rng.integers(0, len(shared), 50)]))
    return [ResultRow("toy", cell.dataset, cell.model, cell.seed, "test", "all", "mean", value)]


def big_cell(cell: Cell, out_dir: Path, shared: Any) -> list[ResultRow]:
    """Touches ``options['mb']`` MiB, so its peak RSS says whether the runner measured this cell alone."""
    block = np.ones(cell.options["mb"] * 2**17)  # 8-byte floats
    return [ResultRow("toy", cell.dataset, cell.model, cell.seed, "test", "all", "sum", float(block.sum()))]


def _grid(fail_model: str | None = None) -> list[Cell]:
    return [Cell("toy", "d", m, s, {"fail": m == fail_model}) for m in ("a", "b") for s in range(2)]


def test_cell_key_is_stable_and_covers_options() -> None:
    c = Cell("msr", "ml-100k", "star", 1, {"train": {"lr": 1e-3}, "model": {"dims": [64, 32]}})
    same = Cell("msr", "ml-100k", "star", 1, {"model": {"dims": [64, 32]}, "train": {"lr": 1e-3}})
    assert c.key == same.key and len(c.key) == 12
    assert c.key != Cell("msr", "ml-100k", "star", 1, {"train": {"lr": 2e-3}, "model": {"dims": [64, 32]}}).key
    assert c.key != Cell("msr", "ml-100k", "star", 2, c.options).key
    assert c.path == "star/seed1" and Cell("fs", "d", "lr", 0, tag="k=8").path == "lr/k=8/seed0"


def test_cells_sharing_a_folder_are_refused(tmp_path: Path) -> None:
    cells = [Cell("toy", "d1", "a", 0), Cell("toy", "d2", "a", 0)]
    with pytest.raises(ConfigError, match="share the folder cells/a/seed0"):
        run_grid(cells, mean_cell, tmp_path, shared=np.arange(10.0), store=False, quiet=True)


def test_failed_cell_is_recorded_and_only_it_reruns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = np.arange(100.0)
    res = run_grid(_grid(fail_model="b"), mean_cell, tmp_path, shared=data, store=False, quiet=True)
    assert (res.ran, res.reused, len(res.failed)) == (2, 0, 2)
    assert "cell b seed 1 failed: RuntimeError: planted failure" in capsys.readouterr().err
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert [(f["model"], f["seed"], f["attempts"]) for f in failures] == [("b", 0, 1), ("b", 1, 1)]  # no retry
    assert failures[0]["reason"] == "RuntimeError: planted failure"
    assert "Traceback" in (tmp_path / "cells" / "b" / "seed0" / "error.txt").read_text()
    assert {r.model for r in read_results(tmp_path / "results.csv")} == {"a"}

    (tmp_path / "healed").touch()
    res = run_grid(_grid(fail_model="b"), mean_cell, tmp_path, shared=data, store=False, quiet=True)
    assert (res.ran, res.reused, len(res.failed)) == (2, 2, 0)
    assert _calls(tmp_path) == ["a seed 0", "a seed 1", "b seed 0", "b seed 1", "b seed 0", "b seed 1"]
    assert json.loads((tmp_path / "failures.json").read_text()) == []
    assert not (tmp_path / "cells" / "b" / "seed0" / "error.txt").exists()
    rows = read_results(tmp_path / "results.csv")
    assert [(r.model, r.seed) for r in rows] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]  # grid order
    # a cell's value depends only on its seed, not on the run that produced it
    assert rows[0].value == rows[2].value and rows[1].value == rows[3].value

    res = run_grid(_grid(fail_model="b"), mean_cell, tmp_path, shared=data, store=False, quiet=True)
    assert (res.ran, res.reused) == (0, 4) and len(_calls(tmp_path)) == 6


def test_changed_options_make_a_cell_stale(tmp_path: Path) -> None:
    data = np.arange(100.0)
    run_grid(_grid(), mean_cell, tmp_path, shared=data, store=False, quiet=True)
    changed = [Cell(c.task, c.dataset, c.model, c.seed, {**c.options, "note": "v2"}) if c.model == "a" else c
               for c in _grid()]
    res = run_grid(changed, mean_cell, tmp_path, shared=data, store=False, quiet=True)
    assert (res.ran, res.reused) == (2, 2)
    assert _calls(tmp_path)[4:] == ["a seed 0", "a seed 1"]


def test_finished_only_runs_nothing_and_tables_the_done_cells(tmp_path: Path) -> None:
    data = np.arange(100.0)
    part = [c for c in _grid() if (c.model, c.seed) in {("a", 1), ("b", 0)}]
    run_grid(part, mean_cell, tmp_path, shared=data, store=False, quiet=True)
    (tmp_path / "failures.json").write_text('[{"model": "b", "seed": 1}]')  # another process's record
    res = run_grid(_grid(), mean_cell, tmp_path, shared=data, store=False, quiet=True, finished_only=True)
    assert (res.ran, res.reused, res.not_run, res.failed) == (0, 2, 2, [])
    assert len(_calls(tmp_path)) == 2  # nothing ran
    assert [(r.model, r.seed) for r in read_results(tmp_path / "results.csv")] == [("a", 1), ("b", 0)]
    assert not (tmp_path / "cells" / "a" / "seed0").exists()
    assert "seed" in (tmp_path / "failures.json").read_text()  # left as it was


def test_a_partial_run_names_the_finished_cells_it_leaves_out_of_its_table(tmp_path: Path) -> None:
    data = np.arange(100.0)
    grid = _grid()
    run_grid(grid[:3], mean_cell, tmp_path, shared=data, store=False, quiet=True)
    (tmp_path / "cells" / "a" / "seed1" / "cell.json").write_text('{"status": "failed"}')
    res = run_grid(grid[3:], mean_cell, tmp_path, shared=data, store=False, quiet=True)
    assert res.outside == ["a/seed0", "b/seed0"]  # a failed cell is not a finished one
    assert [(r.model, r.seed) for r in read_results(tmp_path / "results.csv")] == [("b", 1)]
    assert run_grid(grid, mean_cell, tmp_path, shared=data, store=False, quiet=True).outside == []


def test_damaged_cell_record_reruns_the_cell(tmp_path: Path) -> None:
    data = np.arange(100.0)
    run_grid(_grid(), mean_cell, tmp_path, shared=data, store=False, quiet=True)
    (tmp_path / "cells" / "a" / "seed1" / "cell.json").write_text('{"status": "do')  # truncated
    res = run_grid(_grid(), mean_cell, tmp_path, shared=data, store=False, quiet=True)
    assert (res.ran, res.reused) == (1, 3) and _calls(tmp_path)[-1] == "a seed 1"


def test_config_error_in_a_cell_stops_the_grid(tmp_path: Path) -> None:
    cells = [Cell("toy", "d", "a", 0, {"bad_option": True}), Cell("toy", "d", "b", 0)]
    with pytest.raises(ConfigError, match="model.lrr"):
        run_grid(cells, mean_cell, tmp_path, shared=np.arange(5.0), store=False, quiet=True)
    assert _calls(tmp_path) == ["a seed 0"]


def test_peak_rss_is_measured_per_cell(tmp_path: Path) -> None:
    cells = [Cell("toy", "d", "big", 0, {"mb": 300}), Cell("toy", "d", "small", 0, {"mb": 1})]
    res = run_grid(cells, big_cell, tmp_path, store=False, quiet=True)
    big, small = res.records
    assert big.wall_seconds > 0 and big.peak_rss_mb > 300
    if small.rss_scope == "cell":  # Linux: the high-water mark is reset before each cell
        assert small.peak_rss_mb < big.peak_rss_mb - 200
    rec = json.loads((tmp_path / "cells" / "big" / "seed0" / "cell.json").read_text())
    assert rec["status"] == "done" and rec["peak_rss_mb"] == big.peak_rss_mb and rec["key"] == cells[0].key


def test_progress_bar_counts_failures_and_is_quiet_when_asked(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    run_grid(_grid(fail_model="a"), mean_cell, tmp_path / "loud", shared=np.arange(9.0), store=False)
    err = capsys.readouterr().err
    assert "cells" in err and "4/4" in err and "done=2 failed=2 running=0" in err
    run_grid(_grid(fail_model="a"), mean_cell, tmp_path / "quiet", shared=np.arange(9.0), store=False, quiet=True)
    err = capsys.readouterr().err
    assert "4/4" not in err and err.count("failed:") == 2  # only the failure lines


def test_finished_cells_are_appended_to_the_store(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    import recwise.store as store_mod
    path = tmp_path / "store.duckdb"
    cells = _grid(fail_model="b")
    run_grid(cells, mean_cell, tmp_path / "out", shared=np.arange(30.0), store=path, quiet=True)
    df = store_mod.ResultStore(path).query(task="toy")
    assert sorted(zip(df["model"], df["seed"])) == [("a", 0), ("a", 1)]
    assert set(df["config_hash"]) == {cells[0].key, cells[1].key}
    assert (df["wall_seconds"] >= 0).all() and (df["peak_rss_mb"] > 0).all()
    assert df["version"][0] and df["source"][0] == f"grid:{tmp_path / 'out'}"
    failures = store_mod.ResultStore(path).failures(task="toy")
    assert sorted(zip(failures["model"], failures["seed"])) == [("b", 0), ("b", 1)]


def test_msr_cells_give_the_same_rows_as_a_direct_run(planted: Prepared, tmp_path: Path) -> None:
    from recwise.tasks.msr import MSRRun, run

    opts = {"train": {"epochs": 1, "batch_size": 512}, "model": {}}
    res = run_grid([Cell("msr", "planted", "lr", 3, opts)], run_task_cell, tmp_path, shared=planted, store=False,
                   quiet=True)
    direct = run(MSRRun("planted", "lr", 3), planted, train_options=opts["train"], progress=False)
    assert res.rows == direct and len(direct) > 0
    assert (tmp_path / "cells" / "lr" / "seed3" / "run.json").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--address", "127.0.0.1:6379"], "option --address needs --executor ray"),
    (["--cell-threads", "0"], "option --cell-threads must be >= 1"),
    (["--workers", "0"], "option --workers must be >= 1"),
    (["--cell-gpus", "1"], "option --cell-gpus must be >= 0 and needs --executor ray"),
])
def test_bad_grid_flags_are_one_line_errors(extra: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--quiet", "bench", "msr", "--models", "lr", "--data-dir", str(tmp_path / "nowhere"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bench_sequential_runs_through_the_grid(tmp_path: Path, rw_home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    write_atomic(tmp_path / "raw")
    args = ["--quiet", "bench", "sequential", "--data-dir", str(tmp_path / "raw"), "--models", "gru4rec",
            "--seeds", "2", "--epochs", "1", "--out", str(tmp_path / "out"), "--store", "none"]
    assert main(args) == 0
    assert "2 cells run, 0 reused, 0 failed" in capsys.readouterr().out
    rows = read_results(tmp_path / "out" / "results.csv")
    assert {(r.model, r.seed) for r in rows} == {("gru4rec", 0), ("gru4rec", 1)}
    assert {r.task for r in rows} == {"sequential"}
    assert "| gru4rec |" in (tmp_path / "out" / "results.md").read_text()
    assert main(args) == 0 and "0 cells run, 2 reused, 0 failed" in capsys.readouterr().out
    assert main([*args, "--set", "train.lr=0.01"]) == 0  # other options: other keys, cells run again
    assert "2 cells run, 0 reused" in capsys.readouterr().out


def test_unreachable_ray_address_fails_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=f"nothing answers at 127.0.0.1:{port}"):
        run_grid([Cell("toy", "d", "a", 0)], mean_cell, tmp_path, executor="ray", address=f"127.0.0.1:{port}",
                 store=False, quiet=True)
    with pytest.raises(ConfigError, match="must be HOST:PORT"):
        run_grid([Cell("toy", "d", "a", 0)], mean_cell, tmp_path, executor="ray", address="somehost",
                 store=False, quiet=True)


def test_damaged_store_stops_the_grid_before_any_cell_runs(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    import recwise.store as store_mod
    bad = tmp_path / "store.duckdb"
    bad.write_bytes(b"not a duckdb file" * 100)
    with pytest.raises(store_mod.StoreError, match="store.duckdb"):
        run_grid(_grid(), mean_cell, tmp_path / "out", shared=np.arange(9.0), store=bad, quiet=True)
    assert _calls(tmp_path / "out") == []
