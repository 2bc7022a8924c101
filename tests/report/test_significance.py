"""`recwise compare`: paired tests over seeds and test rows from a bench folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recwise.cli import main
from recwise.errors import DataError
from recwise.metrics import auc
from recwise.metrics.ranking import ranking_metrics
from recwise.report.significance import compare_grid, comparison_markdown
from recwise.results import ResultRow, read_results, write_results


def _bench(out: Path, noise: dict[str, float], seeds: int = 3, rows: int = 4000) -> None:
    """A bench folder whose models score the same labels with planted noise levels."""
    rng = np.random.default_rng(0)
    label = (rng.random(rows) < 0.4).astype(np.float32)
    scen = rng.integers(0, 2, rows)
    result = []
    for model, sigma in noise.items():
        for s in range(seeds):
            prob = 1 / (1 + np.exp(-((label - 0.5) * 2 + rng.normal(0, sigma, rows))))
            cell = out / "cells" / model / f"seed{s}"
            cell.mkdir(parents=True)
            np.savez(cell / "test_predictions.npz", label=label, scenario=scen, prob=prob)
            result.append(ResultRow("msr", "toy", model, s, "test", "all", "auc", auc(label, prob)))
            for k in range(2):
                m = scen == k
                result.append(ResultRow("msr", "toy", model, s, "test", f"scenario={k}", "auc", auc(label[m], prob[m])))
    write_results(out / "results.csv", result)


def test_a_clearly_better_model_is_better_and_a_twin_is_not_separated(tmp_path: Path) -> None:
    _bench(tmp_path, {"floor": 2.0, "good": 1.0, "twin": 2.0})
    comps = {c.model: c for c in compare_grid(tmp_path, "floor", n_resamples=300)}
    good, twin = comps["good"], comps["twin"]
    assert good.mean > good.baseline_mean and good.seed_test.p_value < 0.01
    assert good.bootstrap is not None and good.bootstrap.p_value < 0.01 and good.bootstrap.ci_low > 0
    assert good.verdict() == "better"
    # same noise level: the seeds do not separate them (the rows alone may: one draw of noise vs another)
    assert twin.verdict() == "not separated" and twin.seed_test.p_value > 0.05
    flipped = {c.model: c for c in compare_grid(tmp_path, "good", n_resamples=300)}["floor"]
    assert flipped.verdict() == "worse" and flipped.bootstrap is not None
    assert flipped.bootstrap.mean_diff == pytest.approx(-good.bootstrap.mean_diff)
    md = comparison_markdown(list(comps.values()))
    assert md.index("| good |") < md.index("| twin |") and "| better |" in md


def test_scenario_segments_bootstrap_the_scenario_rows(tmp_path: Path) -> None:
    _bench(tmp_path, {"floor": 2.0, "good": 1.0})
    c = compare_grid(tmp_path, "floor", segment="scenario=1", n_resamples=200)[0]
    assert c.bootstrap is not None and c.bootstrap.n_rows < 4000


def test_missing_predictions_leave_only_the_seed_test(tmp_path: Path) -> None:
    _bench(tmp_path, {"floor": 2.0, "good": 1.0})
    (tmp_path / "cells" / "good" / "seed2" / "test_predictions.npz").unlink()
    c = compare_grid(tmp_path, "floor", n_resamples=100)[0]
    assert c.bootstrap is None and c.seed_test.n == 3


def test_cli_compare_writes_the_table_and_rejects_a_bad_baseline(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _bench(tmp_path, {"floor": 2.0, "good": 1.0})
    assert main(["compare", str(tmp_path), "--baseline", "floor", "--resamples", "100", "--write"]) == 0
    assert "| good | 3 |" in capsys.readouterr().out and (tmp_path / "significance.md").exists()
    assert main(["compare", str(tmp_path), "--baseline", "flor"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'floor'" in err and len(err.splitlines()) == 1


def _seq_bench(out: Path, shift: dict[str, float], seeds: int = 3, users: int = 900) -> None:
    """A sequential bench folder: per model and seed every test user's rank (test_ranks.npz), and the metrics."""
    rng = np.random.default_rng(1)
    hard = rng.exponential(8.0, users)  # how hard each user's target is: shared by every model
    length = rng.integers(1, 50, users)
    result = []
    for model, gain in shift.items():
        for s in range(seeds):
            rank = np.maximum(0, np.round(hard * (1 - gain) + rng.exponential(2.0, users))).astype(np.int64)
            cell = out / "cells" / model / f"seed{s}"
            cell.mkdir(parents=True)
            np.savez(cell / "test_ranks.npz", user=np.arange(users), target=np.ones(users, np.int64),
                     item_len=length, rank=rank)
            for seg, sel in (("all", length >= 0), ("len=5-20", (length >= 5) & (length < 20))):
                for metric, value in ranking_metrics(rank[sel], (10,)).items():
                    result.append(ResultRow("sequential", "toy", model, s, "test", seg, metric, value))
    write_results(out / "results.csv", result)


def test_sequential_folders_bootstrap_over_test_users(tmp_path: Path) -> None:
    _seq_bench(tmp_path, {"base": 0.0, "good": 0.5, "twin": 0.0})
    comps = {c.model: c for c in compare_grid(tmp_path, "base", metric="ndcg@10", n_resamples=500)}
    good, twin = comps["good"], comps["twin"]
    assert good.bootstrap is not None and good.bootstrap.n_rows == 900
    assert good.bootstrap.mean_diff == pytest.approx(good.mean - good.baseline_mean, abs=2e-6)
    assert good.bootstrap.p_value < 0.01 and good.verdict() == "better"
    assert twin.bootstrap is not None and twin.verdict() == "not separated"
    seg = compare_grid(tmp_path, "base", metric="hit@10", segment="len=5-20", n_resamples=200)
    assert {c.model: c for c in seg}["good"].bootstrap.n_rows < 900  # type: ignore[union-attr]
    np.savez(tmp_path / "cells" / "good" / "seed1" / "test_ranks.npz", user=np.arange(1, 901),
             target=np.ones(900), item_len=np.ones(900), rank=np.zeros(900))
    with pytest.raises(DataError, match="test rows differ"):
        compare_grid(tmp_path, "base", metric="ndcg@10", n_resamples=10)
    (tmp_path / "cells" / "good" / "seed1" / "test_ranks.npz").unlink()
    assert {c.model: c for c in compare_grid(tmp_path, "base", metric="ndcg@10")}["good"].bootstrap is None


def test_the_header_names_one_baseline_mean_only_when_every_row_has_the_same_seeds(tmp_path: Path) -> None:
    _bench(tmp_path, {"floor": 2.0, "good": 1.0, "twin": 2.0})
    comps = compare_grid(tmp_path, "floor", n_resamples=50)
    assert f"against **floor** ({comps[0].baseline_mean:.4f})" in comparison_markdown(comps)
    rows = [r for r in read_results(tmp_path / "results.csv") if not (r.model == "twin" and r.seed == 2)]
    write_results(tmp_path / "results.csv", rows)
    comps = compare_grid(tmp_path, "floor", n_resamples=50)
    assert "each row over the seeds it shares with floor" in comparison_markdown(comps)


def test_a_model_from_another_folder_joins_under_its_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seq_bench(tmp_path / "main", {"base": 0.0, "sigma": 0.2})
    _seq_bench(tmp_path / "corrected", {"sigma": 0.5})  # the same users and lengths: _seq_bench's rng order
    comps = compare_grid(tmp_path / "main", "sigma", metric="ndcg@10", n_resamples=300,
                         add=[("corrected", tmp_path / "corrected")])
    c = {x.model: x for x in comps}["corrected:sigma"]
    assert c.bootstrap is not None and c.bootstrap.mean_diff > 0 and c.bootstrap.p_value < 0.01
    assert main(["compare", str(tmp_path / "main"), "--baseline", "corrected:sigma", "--metric", "hit@10",
                 "--add", f"corrected={tmp_path / 'corrected'}", "--resamples", "50"]) == 0
    assert "| sigma | 3 |" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "main"), "--baseline", "base", "--add", str(tmp_path / "corrected")]) == 2
    assert "expected LABEL=FOLDER" in capsys.readouterr().err
    write_results(tmp_path / "other" / "results.csv", [ResultRow("sequential", "ml-1m", "x", 0, "test", "all",
                                                                 "ndcg@10", 0.1)])
    with pytest.raises(DataError, match="different datasets"):
        compare_grid(tmp_path / "main", "base", metric="ndcg@10", add=[("o", tmp_path / "other")])
