"""ranx-backed per-query metrics and the Holm-corrected paired tests."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.errors import DataError
from recwise.metrics.retrieval import compare_arms, holm, per_query


def test_per_query_values_by_hand() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"d3": 1}, "q3": {"d4": 2}}
    run = {"q1": {"d9": 3.0, "d1": 2.0, "d2": 1.0}, "q2": {"d3": 1.0}}  # q3 missing: scores 0
    got = per_query(qrels, run, ["mrr@10", "recall@100", "map"])
    assert got["mrr@10"].tolist() == [0.5, 1.0, 0.0]
    assert got["recall@100"].tolist() == [1.0, 1.0, 0.0]
    assert got["map"][0] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_graded_ndcg_uses_linear_gains() -> None:
    qrels = {"q": {"a": 3, "b": 1}}
    ideal = 3 + 1 / np.log2(3)
    got = per_query(qrels, {"q": {"b": 2.0, "a": 1.0}}, ["ndcg@10"])["ndcg@10"][0]
    assert got == pytest.approx((1 + 3 / np.log2(3)) / ideal)


def test_unjudged_run_query_is_an_error() -> None:
    with pytest.raises(DataError, match="without judgments"):
        per_query({"q1": {"d": 1}}, {"q1": {"d": 1.0}, "q9": {"d": 1.0}})


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_compare_arms_sees_a_consistent_difference_only() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, 60)
    values = {"base": base, "same": base.copy(), "better": base + 0.1 + rng.normal(0, 0.01, 60),
              "noise": base + rng.normal(0, 0.05, 60)}
    comps = {c.arm: c for c in compare_arms(values, "base", "ndcg@10")}
    assert comps["same"].p_value == 1.0 and comps["better"].p_holm < 1e-6 and comps["noise"].p_holm > 0.01
    assert comps["better"].p_holm >= comps["better"].p_value
    fisher = {c.arm: c for c in compare_arms(values, "base", "ndcg@10", test="fisher", n_permutations=2000)}
    assert fisher["better"].p_value < 0.01


def test_paired_table_gives_each_arm_its_difference_and_holm_p() -> None:
    from recwise.metrics.retrieval import paired_table

    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.6, 40)
    better = {"ndcg@10": base + 0.1 + rng.normal(0, 0.001, 40), "mrr@10": base + 0.05 + rng.normal(0, 0.2, 40)}
    values = {"base": {"ndcg@10": base, "mrr@10": base}, "better": better}
    lines = paired_table(values, "base", ["better"], ["ndcg@10", "mrr@10"], "vs base:")
    assert lines[:3] == ["", "vs base:", ""] and lines[3] == "| arm | ndcg@10 Δ | p | mrr@10 Δ | p |"
    cells = [c.strip() for c in lines[5].strip("| ").split("|")]
    assert cells[0] == "better" and abs(float(cells[1]) - 0.1) < 0.001 and float(cells[2]) < 1e-6
    direct = compare_arms({"base": base, "better": values["better"]["mrr@10"]}, "base", "mrr@10")[0]
    assert float(cells[4]) == pytest.approx(direct.p_holm, rel=1e-2) and float(cells[4]) > 1e-6
