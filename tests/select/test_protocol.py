"""The selection protocol: k grid, AUKC, search -> retrain -> rows, the resumable bench and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from recwise.cli import main
from recwise.config import replace
from recwise.data.synthetic import planted_ctr
from recwise.errors import ConfigError
from recwise.results import COLUMNS
from recwise.select import ERASE_TRAIN
from recwise.tasks.selection import (
    SelectionRun,
    aukc,
    bench,
    depends_on_backbone,
    parse_k_grid,
    resolve_fields,
    run,
)

TRAIN = replace(ERASE_TRAIN, epochs=4, batch_size=512, patience=2, device="cpu")


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


def test_bench_reuses_rankings_and_retrains_and_resumes(planted, tmp_path: Path) -> None:  # noqa: ANN001
    kw = dict(methods=["chi2", "mi"], backbones=["mlp", "widedeep"], k=(1, 3, 6), seeds=[0, 1], out_dir=tmp_path,
              train=TRAIN, progress=False)
    res = bench(planted.prepared, "planted", **kw)
    assert not res.failed
    # filters do not use a backbone: one search per method and seed, not per backbone
    assert res.searches_run == 2 * 2
    assert sorted(p.name for p in (tmp_path / "rankings").iterdir()) == [
        "chi2-any-seed0.json", "chi2-any-seed1.json", "mi-any-seed0.json", "mi-any-seed1.json"]
    # one retrain per distinct (backbone, seed, field set): k=6 (all fields) is shared by both methods
    distinct = {(b, s, frozenset(res.rankings[f"{m}-any-seed{s}"].top_k(k)))
                for b in ("mlp", "widedeep") for s in (0, 1) for m in ("chi2", "mi") for k in (1, 3, 6)}
    assert res.retrains_run == len(distinct) < 2 * 2 * 2 * 3
    assert res.retrains_run + res.retrains_reused == 2 * 2 * 2 * 3
    models = {r.model for r in res.rows}
    assert models == {"mlp+chi2", "mlp+mi", "widedeep+chi2", "widedeep+mi"}
    assert {r.segment for r in res.rows} == {"k=1", "k=3", "k=6", "aukc"}
    assert len(res.rows) == 4 * 2 * (3 * 2 * 2 + 2)
    html = (tmp_path / "auc_vs_k.html").read_text()
    assert "Plotly.newPlot" in html and 'src="http' not in html and len(html) > 1_000_000  # plotly.js inlined
    assert "test AUKC" in (tmp_path / "results.md").read_text()
    # a rerun does nothing new and gives the same rows
    again = bench(planted.prepared, "planted", **kw)
    assert again.searches_run == 0 and again.retrains_run == 0
    assert [r.value for r in again.rows] == [r.value for r in res.rows]
    # other train options in the same folder are refused
    with pytest.raises(ConfigError, match="holds results made with other"):
        bench(planted.prepared, "planted", **{**kw, "train": replace(TRAIN, lr=1e-2)})


def test_bench_parallel_gives_the_same_numbers(planted, tmp_path: Path) -> None:  # noqa: ANN001
    kw = dict(methods=["chi2"], backbones=["mlp"], k=(2, 6), seeds=[0], train=TRAIN, progress=False)
    a = bench(planted.prepared, "planted", out_dir=tmp_path / "a", workers=1, **kw)
    b = bench(planted.prepared, "planted", out_dir=tmp_path / "b", workers=2, **kw)
    np.testing.assert_allclose([r.value for r in a.rows], [r.value for r in b.rows], rtol=0, atol=1e-6)


def _cli(args: list[str]) -> int:
    return main(["--quiet", "--threads", "1", *args])


def test_cli_one_line_errors(capsys: pytest.CaptureFixture[str], ml100k_dir: Path, rw_home: Path) -> None:
    base = ["run", "selection", "--data-dir", str(ml100k_dir)]
    assert _cli([*base, "--method", "lasoo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown selection method 'lasoo'; did you mean 'lasso'" in err
    assert _cli([*base, "--k", "3,11"]) == 2
    assert "k=11 is out of range: the dataset has F=10 candidate fields" in capsys.readouterr().err
    assert _cli([*base, "--fields", "user_id,itme_id"]) == 2
    assert "unknown field 'itme_id'; did you mean 'item_id'" in capsys.readouterr().err
    assert _cli([*base, "--set", "method.alpah=1", "--method", "lasso"]) == 2
    assert "did you mean 'alpha'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_run_on_ml100k(ml100k_dir: Path, rw_home: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = _cli(["run", "selection", "--data-dir", str(ml100k_dir), "--method", "chi2", "--backbone", "deepfm",
                 "--k", "2,all", "--epochs", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "AUKC" in printed
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    test = {(r["segment"], r["metric"]): float(r["value"]) for r in rows if r["split"] == "test"}
    # beats the trivial baseline (AUC 0.5) clearly with the two best fields and with all ten
    assert test[("k=2", "auc")] > 0.70 and test[("k=10", "auc")] > 0.72
