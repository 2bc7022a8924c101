"""The selection protocol and task: k grid, AUKC, search -> retrain -> rows, the bench through the grid
runner (rankings and retrains shared across cells, resumable), and the CLI."""

from __future__ import annotations

import csv
import json
import multiprocessing
import time
from pathlib import Path

import pytest

from recwise.bench import run_grid
from recwise.cli import build_parser, main
from recwise.config import replace
from recwise.data.synthetic import planted_ctr
from recwise.errors import ConfigError
from recwise.results import COLUMNS
from recwise.select import ERASE_TRAIN
from recwise.tasks.base import get_task, run_task_cell
from recwise.tasks.selection import (
    ERASE_METHODS,
    TASK,
    SelectionData,
    SelectionRun,
    aukc,
    depends_on_backbone,
    parse_k_grid,
    resolve_fields,
    run,
)
from recwise.tasks.selection.protocol import cached

TRAIN = replace(ERASE_TRAIN, epochs=4, batch_size=512, patience=2, device="cpu")
TRAIN_SETS = ["--epochs", "4", "--set", "train.batch_size=512", "--set", "train.patience=2",
              "--set", "train.device=cpu"]


@pytest.fixture(scope="module")
def planted():  # noqa: ANN201
    return planted_ctr(6000, n_signal=2, n_noise=3, n_copies=0, dense_noise=False, seed=5)


def test_k_grid() -> None:
    assert parse_k_grid("3,5,7,all", 10) == (3, 5, 7, 10)
    assert parse_k_grid("all,2,2", 4) == (2, 4)
    with pytest.raises(ConfigError, match="k=12 is out of range: the dataset has F=10 candidate fields"):
        parse_k_grid("3,12", 10)
    with pytest.raises(ConfigError, match="'x' is not an integer"):
        parse_k_grid("3,x", 10)
    with pytest.raises(ConfigError, match="k=0 is out of range"):
        parse_k_grid("0", 10)


def test_aukc_is_the_normalised_trapezoid() -> None:
    assert aukc([3], [0.7]) == pytest.approx(0.7)
    assert aukc([1, 3], [0.6, 0.8]) == pytest.approx(0.7)
    # uneven grid: ((2-1)*(0.6+0.7)/2 + (10-2)*(0.7+0.8)/2) / 9
    assert aukc([10, 1, 2], [0.8, 0.6, 0.7]) == pytest.approx((0.65 + 6.0) / 9)
    assert aukc([1, 2, 3], [0.75] * 3) == pytest.approx(0.75)


def test_unknown_field_and_method(planted) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="unknown field 'signal'; fields: "):
        resolve_fields(planted.prepared, ["s0", "signal"])
    with pytest.raises(ConfigError, match="unknown selection method 'gdbt'; did you mean 'gbdt'"):
        depends_on_backbone("gdbt")
    assert not depends_on_backbone("gbdt") and not depends_on_backbone("permutation")
    assert depends_on_backbone("permutation_deep")


def test_task_is_registered_with_methods_as_units() -> None:
    assert get_task("selection") is TASK and TASK.unit == "method"
    assert "gbdt" in TASK.units() and "chi2" in TASK.units()
    assert TASK.expand_units("erase") == list(ERASE_METHODS)
    assert TASK.expand_units("all") == TASK.units()
    assert TASK.expand_units("gbdt, chi2,gbdt") == ["gbdt", "chi2"]
    with pytest.raises(ConfigError, match="did you mean 'lasso'"):
        TASK.expand_units("gbdt,lasoo")


def test_run_selects_planted_fields_and_beats_the_noise(planted, tmp_path: Path) -> None:  # noqa: ANN001
    cell = SelectionRun("planted", "gbdt", "deepfm", 0, (1, 3, 6))
    rows, ranking = run(cell, planted.prepared, train=TRAIN, out_dir=tmp_path, progress=False)
    assert set(ranking.top_k(3)) == set(planted.signal)
    test = {(r.segment, r.metric): r.value for r in rows if r.split == "test"}
    # the three planted fields alone are as good as all fields; one noise field alone would be ~0.5
    assert test[("k=3", "auc")] > 0.70 and test[("k=3", "auc")] > test[("k=1", "auc")]
    assert abs(test[("k=3", "auc")] - test[("k=6", "auc")]) < 0.02
    assert test[("aukc", "auc")] == pytest.approx(aukc([1, 3, 6], [test[(f"k={k}", "auc")] for k in (1, 3, 6)]))
    with open(tmp_path / "results.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == COLUMNS
    assert json.loads((tmp_path / "ranking.json").read_text())["ranking"] == ranking.ranking


# ---------------------------------------------------------------------------------------------
# the bench: the task's cells through the grid runner, on the planted data


def _bench(planted, out: Path, argv: list[str], *, ks=(1, 3, 6), seeds=(0, 1), **grid: object):  # noqa: ANN001, ANN202
    """What `recwise bench selection` does, with the planted table in place of a registered dataset."""
    args = build_parser().parse_args(["bench", "selection", *TRAIN_SETS, *argv])
    units = TASK.expand_units(args.units)
    options = TASK.options(args, units)
    fields = resolve_fields(planted.prepared, None)
    extra = {"data": planted.prepared.meta["key"], "fields": fields, "k": list(ks)}
    cells = TASK.cells(args, units, list(seeds), {**options, **extra})
    res = run_grid(cells, run_task_cell, out, shared=SelectionData(planted.prepared, out / "cache"), store=False,
                   quiet=True, deterministic=True, **grid)
    return res, cells


def _values(rows) -> list[float]:  # noqa: ANN001
    return [round(r.value, 6) for r in rows]  # a reused cell's rows are read back from its results.csv


def _infos(out: Path, cells) -> dict[str, dict]:  # noqa: ANN001
    return {c.path: json.loads((out / "cells" / c.path / "run.json").read_text()) for c in cells}


def test_bench_shares_rankings_and_retrains_across_cells_and_resumes(planted, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "bench"
    argv = ["--methods", "chi2,mi", "--backbones", "mlp,widedeep"]
    res, cells = _bench(planted, out, argv)
    assert not res.failed and res.ran == len(cells) == 2 * 2 * 2
    assert {c.model for c in cells} == {"mlp+chi2", "mlp+mi", "widedeep+chi2", "widedeep+mi"}
    infos = _infos(out, cells)
    # filters do not use a backbone: one search per method and seed, shared by both backbones
    assert sum(i["searched"] for i in infos.values()) == 2 * 2
    names = sorted(p.name.rsplit("-", 1)[0] for p in (out / "cache" / "rankings").iterdir())
    assert names == ["chi2-any-seed0", "chi2-any-seed1", "mi-any-seed0", "mi-any-seed1"]
    # one retrain per distinct (backbone, seed, field set): k=6 (all fields) is shared by both methods
    rankings = {(i["method"], i["seed"]): json.loads((out / "cells" / p / "ranking.json").read_text())["ranking"]
                for p, i in infos.items()}
    distinct = {(b, s, frozenset(rankings[(m, s)][:k]))
                for b in ("mlp", "widedeep") for s in (0, 1) for m in ("chi2", "mi") for k in (1, 3, 6)}
    assert sum(i["retrains_run"] for i in infos.values()) == len(distinct) < 2 * 2 * 2 * 3
    assert sum(i["retrains_run"] + i["retrains_reused"] for i in infos.values()) == 2 * 2 * 2 * 3
    assert len(list((out / "cache" / "retrains").iterdir())) == len(distinct)
    # the same field set gives the same numbers in every cell that uses it
    per_k = {(p, k): v for p, i in infos.items() for k, v in i["per_k"].items()}
    assert per_k[("mlp+chi2/seed0", "6")]["test_auc"] == per_k[("mlp+mi/seed0", "6")]["test_auc"]
    assert {r.segment for r in res.rows} == {"k=1", "k=3", "k=6", "aukc"}
    assert len(res.rows) == 4 * 2 * (3 * 2 * 2 + 2)
    md = TASK.bench_report(res, out, "planted")
    assert "test AUKC (k = 1, 3, 6)" in md and "| mlp+chi2 |" in md
    html = (out / "auc_vs_k.html").read_text()
    assert "Plotly.newPlot" in html and 'src="http' not in html and len(html) > 1_000_000  # plotly.js inlined

    # a rerun runs nothing and gives the same rows
    again, _ = _bench(planted, out, argv)
    assert (again.ran, again.reused) == (0, len(cells))
    assert _values(again.rows) == _values(res.rows)
    # a killed bench (one cell's folder gone) re-runs that cell only, entirely from the caches
    import shutil

    shutil.rmtree(out / "cells" / "widedeep+mi" / "seed1")
    again, _ = _bench(planted, out, argv)
    assert (again.ran, again.reused) == (1, len(cells) - 1)
    info = _infos(out, cells)["widedeep+mi/seed1"]
    assert not info["searched"] and info["retrains_run"] == 0
    assert _values(again.rows) == _values(res.rows)
    # other train options: every cell and retrain runs again; the filters' rankings do not depend on them
    n_retrains = len(distinct)
    other, _ = _bench(planted, out, [*argv, "--set", "train.lr=1e-2"])
    assert other.ran == len(cells)
    infos = _infos(out, cells)
    assert sum(i["searched"] for i in infos.values()) == 0
    assert sum(i["retrains_run"] for i in infos.values()) == len(list((out / "cache" / "retrains").iterdir())) \
        - n_retrains > 0
    assert _values(other.rows) != _values(res.rows)


def test_method_options_key_the_rankings(planted, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "bench"
    argv = ["--methods", "chi2", "--backbones", "mlp"]
    _bench(planted, out, argv, ks=(6,), seeds=(0,))
    other, cells = _bench(planted, out, [*argv, "--set", "method.chi2.max_rows=1000"], ks=(6,), seeds=(0,))
    assert other.ran == 1
    info = _infos(out, cells)["mlp+chi2/seed0"]
    assert info["searched"] and info["retrains_run"] == 0  # k=6 is every field: the same retrain
    assert len(list((out / "cache" / "rankings").iterdir())) == 2


def _slow_entry(root: str, calls: str, result: str) -> None:
    def compute() -> dict:
        with open(calls, "a") as fh:
            fh.write("computed\n")
        time.sleep(1.0)
        return {"x": 1.5}

    value, _ = cached(Path(root), "retrains", "mlp-seed0", {"fields": ["a", "b"]}, compute)
    Path(result).write_text(json.dumps(value))


def test_concurrent_cells_compute_a_cache_entry_once(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_slow_entry, args=(str(tmp_path / "cache"), str(calls), str(tmp_path / f"r{i}")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [json.loads((tmp_path / f"r{i}").read_text()) for i in range(2)] == [{"x": 1.5}] * 2
    assert calls.read_text() == "computed\n"  # the second process waited for the first one's entry
    entry = json.loads(next((tmp_path / "cache" / "retrains").iterdir()).read_text())
    assert entry == {"key": {"fields": ["a", "b"]}, "value": {"x": 1.5}}


@pytest.mark.slow
def test_ray_executor_gives_the_local_numbers(planted, tmp_path: Path) -> None:  # noqa: ANN001
    pytest.importorskip("ray", reason="optional: Ray (pip install 'recwise[grid]')")
    argv = ["--methods", "chi2,gbdt", "--backbones", "mlp"]
    local, _ = _bench(planted, tmp_path / "local", argv, ks=(2, 6), seeds=(0,))
    ray, cells = _bench(planted, tmp_path / "ray", argv, ks=(2, 6), seeds=(0,), executor="ray", workers=2)
    assert not ray.failed and ray.ran == 2
    assert [r.value for r in ray.rows] == [r.value for r in local.rows]
    # k=6 (every field) is one entry even when both cells ran at once
    assert len(list((tmp_path / "ray" / "cache" / "retrains").iterdir())) == \
        len(list((tmp_path / "local" / "cache" / "retrains").iterdir()))


# ---------------------------------------------------------------------------------------------
# the CLI


def _cli(args: list[str]) -> int:
    return main(["--quiet", "--threads", "1", *args])


def test_models_lists_the_selectors(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["models", "selection"]) == 0
    assert capsys.readouterr().out.split() == TASK.units()


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "selection", "--method", "lasoo"], "unknown selection method 'lasoo'; did you mean 'lasso'"),
    (["run", "selection", "--backbone", "deepfn"], "did you mean 'deepfm'"),
    (["run", "selection", "--set", "method.alpah=1", "--method", "lasso"], "did you mean 'alpha'"),
    (["run", "selection", "--set", "epochs=3"], "must start with 'train.', 'backbone.' or 'method.'"),
    (["run", "selection", "--set", "backbone.embed_dimm=8"], "unknown option 'backbone.embed_dimm'"),
    (["run", "selection", "--max-rows", "0"], "option --max-rows must be >= 1"),
    (["bench", "selection", "--methods", "gbdt,lasoo"], "did you mean 'lasso'"),
    (["bench", "selection", "--methods", "gbdt,chi2", "--set", "method.alpha=1"],
     "use method.<name>.<option> with <name> one of ['gbdt', 'chi2']"),
    (["bench", "selection", "--methods", "lasso,chi2", "--set", "method.lasso.alpah=1"], "did you mean 'alpha'"),
    (["bench", "selection", "--backbones", "deepfm,dcnn"], "did you mean 'dcn'"),
    (["bench", "selection", "--backbones", ","], "option --backbones names no backbone"),
    (["bench", "selection", "--seeds", "0"], "option --seeds must be >= 1"),
    (["bench", "selection", "--workers", "0"], "option --workers must be >= 1"),
])
def test_cli_bad_options_before_reading_data(argv: list[str], message: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # the data folder does not exist: these errors come before any data is read
    assert _cli([*argv, "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_cli_bad_fields_and_k_need_the_data(capsys: pytest.CaptureFixture[str], ml100k_dir: Path,
                                            rw_home: Path) -> None:
    base = ["run", "selection", "--data-dir", str(ml100k_dir)]
    assert _cli([*base, "--k", "3,11"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "k=11 is out of range: the dataset has F=10 candidate fields" in err
    assert _cli([*base, "--fields", "user_id,itme_id"]) == 2
    assert "unknown field 'itme_id'; did you mean 'item_id'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_run_on_ml100k(ml100k_dir: Path, rw_home: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = _cli(["run", "selection", "--data-dir", str(ml100k_dir), "--method", "chi2", "--backbone", "deepfm",
                 "--k", "2,all", "--epochs", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "AUKC" in printed and "ranking: " in printed
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    test = {(r["segment"], r["metric"]): float(r["value"]) for r in rows if r["split"] == "test"}
    # beats the trivial baseline (AUC 0.5) clearly with the two best fields and with all ten
    assert test[("k=2", "auc")] > 0.70 and test[("k=10", "auc")] > 0.72
    assert json.loads((out / "run.json").read_text())["provenance"]["executor"] == "run"


@pytest.mark.slow
def test_cli_bench_on_ml100k_is_resumable(ml100k_dir: Path, rw_home: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "selection", "--data-dir", str(ml100k_dir), "--methods", "chi2,gbdt", "--backbones", "mlp",
            "--k", "2,all", "--seeds", "1", "--epochs", "1", "--store", "none", "--out", str(tmp_path / "b")]
    assert _cli(argv) == 0
    printed = capsys.readouterr().out
    assert "2 cells run, 0 reused, 0 failed" in printed and "| chi2 |" in printed
    assert (tmp_path / "b" / "auc_vs_k.html").exists()
    first = (tmp_path / "b" / "results.csv").read_text()
    assert {r["model"] for r in csv.DictReader(first.splitlines())} == {"mlp+chi2", "mlp+gbdt"}
    assert _cli(argv) == 0
    assert "0 cells run, 2 reused, 0 failed" in capsys.readouterr().out
    assert (tmp_path / "b" / "results.csv").read_text() == first
