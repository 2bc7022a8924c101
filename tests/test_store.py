"""The results store: appends with metadata and provenance, grouped statistics, parallel writers,
damaged files, stores from before the provenance columns."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("duckdb")

from recwise.errors import ConfigError
from recwise.results import ResultRow
from recwise.store import ResultStore, StoreError, default_store_path


def _rows(model: str, seed: int, auc: float, *, task: str = "msr", dataset: str = "toy") -> list[ResultRow]:
    return [ResultRow(task, dataset, model, seed, "test", "all", "auc", auc),
            ResultRow(task, dataset, model, seed, "test", "scenario=0", "auc", auc - 0.01),
            ResultRow(task, dataset, model, seed, "val", "all", "auc", auc + 0.02)]


def test_append_keeps_meta_and_summary_is_mean_std_count(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.duckdb")
    assert not store.exists and store.count() == 0
    for seed, auc in enumerate([0.70, 0.72, 0.74]):
        store.append(_rows("a", seed, auc), {"config_hash": "h1", "wall_seconds": 1.5 + seed})
    store.append(_rows("b", 0, 0.60), {"config_hash": "h2", "peak_rss_mb": None})
    df = store.query(model="a", seed=1, split="test", segment="all")
    assert df.height == 1
    rec = df.row(0, named=True)
    assert (rec["value"], rec["config_hash"], rec["wall_seconds"], rec["status"]) == (0.72, "h1", 2.5, "ok")
    assert rec["version"] and rec["peak_rss_mb"] > 0 and rec["host"]
    assert store.query(model="b")["peak_rss_mb"].null_count() == 3  # None given means NULL, not this process
    s = store.summary(split="test", segment="all", metric="auc")
    by_model = {r["model"]: r for r in s.iter_rows(named=True)}
    assert by_model["a"]["count"] == 3 and by_model["b"]["count"] == 1
    assert by_model["a"]["mean"] == pytest.approx(0.72) and by_model["a"]["std"] == pytest.approx(0.02)
    assert by_model["b"]["std"] == 0.0
    # filters take lists; grouping can be coarser
    assert store.summary(by=("split",), model=["a", "b"])["count"].to_list() == [8, 4]


def test_rerun_supersedes_and_history_is_kept(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.duckdb")
    store.append(_rows("a", 0, 0.70), {"config_hash": "old"})
    store.append(_rows("a", 0, 0.75), {"config_hash": "new"})
    latest = store.query(model="a", split="test", segment="all")
    assert latest["value"].to_list() == [0.75] and latest["config_hash"].to_list() == ["new"]
    assert store.query(model="a", split="test", segment="all", latest=False).height == 2
    assert store.count() == 6


def test_failures_are_recorded_and_cleared_by_a_later_success(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.duckdb")
    store.append(_rows("a", 0, 0.7))
    store.append_failure("msr", "toy", "a", 1, "RuntimeError: worker died\ntraceback...")
    store.append_failure("msr", "toy", "b", 0, "MemoryError")
    f = store.failures()
    assert sorted(zip(f["model"], f["seed"], f["error"])) == [("a", 1, "RuntimeError: worker died"),
                                                              ("b", 0, "MemoryError")]
    store.append(_rows("a", 1, 0.71))
    assert store.failures()["model"].to_list() == ["b"]
    # a failed cell never enters the statistics
    assert store.summary(split="test", segment="all")["count"].to_list() == [2]


def test_bad_meta_key_and_filter_are_config_errors(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.duckdb")
    with pytest.raises(ConfigError, match="did you mean 'wall_seconds'"):
        store.append(_rows("a", 0, 0.7), {"wall_second": 3.0})
    store.append(_rows("a", 0, 0.7))
    with pytest.raises(ConfigError, match="did you mean 'dataset'"):
        store.query(datset="toy")


def test_default_path_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECWISE_STORE", raising=False)
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path))
    assert default_store_path() == tmp_path / "results.duckdb"
    monkeypatch.setenv("RECWISE_STORE", str(tmp_path / "x.duckdb"))
    assert ResultStore().path == tmp_path / "x.duckdb"


def _writer(path: str, worker: int, appends: int) -> None:
    store = ResultStore(path, lock_timeout=120)
    for i in range(appends):  # one short transaction per cell, as a grid worker does
        store.append(_rows(f"m{worker}", i, 0.5 + i / 1000), {"config_hash": f"w{worker}"})


def test_parallel_writers_lose_no_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "r.duckdb")
    workers, appends = 4, 8
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, appends)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0] * workers
    store = ResultStore(path)
    assert store.count() == workers * appends * 3
    df = store.query(latest=False)
    assert df["append_no"].n_unique() == workers * appends  # every append committed once, in a total order
    counts = store.summary(by=("model",), split="test", segment="all")
    assert counts["count"].to_list() == [appends] * workers


def test_truncated_store_raises_naming_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.duckdb"
    store = ResultStore(good)
    for seed in range(8):  # several appends: several blocks, the last one partly cut below
        store.append([r for s in range(40) for r in _rows("a", seed * 100 + s, 0.7)])
    size = good.stat().st_size
    for cut in (0, 100, size // 2, size - 1000):
        bad = tmp_path / f"cut{cut}.duckdb"
        shutil.copy(good, bad)
        with open(bad, "r+b") as fh:
            fh.truncate(cut)
        with pytest.raises(StoreError) as err:
            ResultStore(bad).summary()
        msg = str(err.value)
        assert str(bad) in msg and "recwise results import" in msg and "\n" not in msg
        with pytest.raises(StoreError):  # appending to it must not "repair" it either
            ResultStore(bad).append(_rows("a", 99, 0.7))


def test_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    csv = tmp_path / "results.csv"
    csv.write_text("task,dataset\nmsr,toy\n")
    with pytest.raises(StoreError, match="not a DuckDB database"):
        ResultStore(csv).summary()
    import duckdb

    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(StoreError, match="not a recwise results store"):
        ResultStore(other).summary()
    with pytest.raises(StoreError, match="no results store"):
        ResultStore(tmp_path / "missing.duckdb").summary()


def test_flipped_bytes_fail_the_checksum(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    ResultStore(path).append([r for s in range(40) for r in _rows("a", s, 0.7)])
    with open(path, "r+b") as fh:  # inside the first data block (after DuckDB's 3 header pages of 4 KiB)
        fh.seek(3 * 4096 + 100)
        fh.write(b"\xff" * 64)
    with pytest.raises(StoreError, match=r"corrupt or truncated \(.*checksum"):
        ResultStore(path).summary()


def test_provenance_round_trip_and_grouping(tmp_path: Path) -> None:
    from recwise.provenance import provenance
    from recwise.store import provenance_meta

    store = ResultStore(tmp_path / "r.duckdb")
    det = provenance(executor="ray", deterministic=True, threads=1)
    store.append(_rows("a", 0, 0.70), provenance_meta(det))
    store.append(_rows("a", 1, 0.72), {"threads": 4, "executor": "local", "deterministic": False,
                                        "packages": {"torch": "9.9"}})
    store.append(_rows("b", 0, 0.60))  # how it ran not stated: NULL; this process's versions filled in
    rec = store.query(model="a", seed=0, split="test", segment="all").row(0, named=True)
    assert (rec["threads"], rec["executor"], rec["deterministic"]) == (1, "ray", True)
    assert rec["git_commit"] == det["git_commit"] and rec["git_dirty"] == det["git_dirty"]
    assert json.loads(rec["packages"]) == {"python": det["python"], **det["packages"]}
    other = store.query(model="a", seed=1, split="test", segment="all").row(0, named=True)
    assert (other["threads"], other["deterministic"], json.loads(other["packages"])) == (4, False, {"torch": "9.9"})
    plain = store.query(model="b", split="test", segment="all").row(0, named=True)
    assert (plain["threads"], plain["executor"], plain["deterministic"]) == (None, None, None)
    assert json.loads(plain["packages"])["numpy"] == np.__version__
    # summary groups by provenance columns; filters take them too
    s = store.summary(by=("model", "threads"), split="test", segment="all", metric="auc")
    assert s.select("model", "threads", "count").rows() == [("a", 1, 1), ("a", 4, 1), ("b", None, 1)]
    assert store.summary(by=("model",), deterministic=True)["count"].to_list() == [3]
    prov = store.provenance(split="test", segment="all")
    assert sorted((r["threads"], r["executor"], r["rows"], r["runs"]) for r in prov.iter_rows(named=True)
                  if r["threads"]) == [(1, "ray", 1, 1), (4, "local", 1, 1)]
    assert prov["rows"].sum() == 3


# the results table as version 1 of the store (before the provenance columns) created it
_V1_SQL = """
CREATE TABLE results (task VARCHAR NOT NULL, dataset VARCHAR NOT NULL, model VARCHAR NOT NULL, seed INTEGER NOT NULL,
    split VARCHAR, segment VARCHAR, metric VARCHAR, value DOUBLE, status VARCHAR NOT NULL, error VARCHAR,
    run_id VARCHAR NOT NULL, append_no BIGINT NOT NULL, created_at TIMESTAMP NOT NULL, config_hash VARCHAR,
    version VARCHAR, git_commit VARCHAR, wall_seconds DOUBLE, peak_rss_mb DOUBLE, host VARCHAR, source VARCHAR);
CREATE TABLE store_info (key VARCHAR PRIMARY KEY, value VARCHAR);
INSERT INTO store_info VALUES ('schema_version', '1');
INSERT INTO results VALUES ('msr', 'toy', 'old', 0, 'test', 'all', 'auc', 0.7, 'ok', NULL, 'r1', 1,
    TIMESTAMP '2024-01-01 00:00:00', 'h', '0.0.9', 'abc', 1.0, 100.0, 'host', NULL);
"""


def test_store_from_before_provenance_opens_and_migrates(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(_V1_SQL)
    con.close()
    store = ResultStore(path)
    old = store.query().row(0, named=True)  # read-only: the new columns read as NULL
    assert (old["model"], old["value"], old["git_commit"]) == ("old", 0.7, "abc")
    assert (old["threads"], old["executor"], old["deterministic"], old["packages"], old["git_dirty"]) == (None,) * 5
    assert store.summary(by=("model", "threads"))["threads"].to_list() == [None]
    assert store.provenance()["rows"].to_list() == [1]
    store.append(_rows("new", 0, 0.8), {"threads": 1, "executor": "local", "deterministic": True})  # migrates
    con = duckdb.connect(str(path), read_only=True)
    cols = {r[0] for r in con.execute("DESCRIBE results").fetchall()}
    version = con.execute("SELECT value FROM store_info WHERE key = 'schema_version'").fetchone()[0]
    con.close()
    assert {"threads", "executor", "deterministic", "packages", "git_dirty"} <= cols and version == "2"
    df = store.query(split="test", segment="all")
    assert df.select("model", "threads", "deterministic").rows() == [("new", 1, True), ("old", None, None)]
