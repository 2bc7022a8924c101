"""RADIO's pieces: min-max fusion by corpus row, the shift sampler and its counted fallback, prompts."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.errors import ConfigError, DataError
from recwise.retrieval import Ranking
from recwise.retrieval.rag import (
    SAMPLERS,
    answer_prompt,
    clean_answer,
    fuse,
    minmax,
    rationale_prompt,
    shift_group,
    similarity_ranking,
)


def test_minmax_per_row_and_a_constant_row() -> None:
    out = minmax(np.array([[3.0, 1.0, 2.0], [5.0, 5.0, -np.inf]]))
    assert out[0].tolist() == [1.0, 0.0, 0.5]
    assert out[1, :2].tolist() == [0.0, 0.0] and np.isnan(out[1, 2])


def test_fuse_matches_documents_by_row_not_position() -> None:
    retr = Ranking(np.array([[10, 11, 12]]), np.array([[0.9, 0.5, 0.1]], dtype=np.float32))
    rat = Ranking(np.array([[12, 11, 10]]), np.array([[0.8, 0.7, 0.0]], dtype=np.float32))
    # normalised: retr 10->1, 11->0.5, 12->0; rationale 12->1, 11->0.875, 10->0
    fused = fuse(rat, retr)
    assert fused.rows.tolist() == [[11, 10, 12]]
    assert fused.scores[0].tolist() == pytest.approx([0.6875, 0.5, 0.5])
    assert fuse(rat, retr, 0.0, 1.0).rows.tolist() == [[10, 11, 12]]
    with pytest.raises(DataError, match="different candidates"):
        fuse(rat, Ranking(np.array([[10, 11, 99]]), retr.scores))


def test_shift_group_takes_ranks_1_4_5_7_10_14_19() -> None:
    g = shift_group(list(range(100, 150)))
    assert g is not None and not g.fallback
    assert g.positive == 100 and g.negatives == (103, 104, 106, 109, 113, 118)
    assert len(shift_group(list(range(30)), "shift_all_neg").negatives) == 17  # type: ignore[union-attr]


def test_shift_group_fallback_keeps_the_group_size_and_is_flagged() -> None:
    g = shift_group(list(range(12)))  # ranks 14 and 19 missing
    assert g is not None and g.fallback
    assert len(g.negatives) == 6 and len(set(g.negatives)) == 6 and 0 not in g.negatives
    assert {3, 4, 6, 9} <= set(g.negatives) and min(g.negatives) >= 3
    assert shift_group(list(range(6))) is None  # fewer than 7 candidates: skipped, never a smaller group
    assert shift_group([5, 6, 7, 8, 9, 10, 11, -1, -1]) is not None  # padding rows are not candidates
    with pytest.raises(ConfigError, match="unknown sampler"):
        shift_group(list(range(30)), "shfit")
    assert set(SAMPLERS) == {"shift", "shift_all_neg"}


def test_similarity_ranking_orders_candidates_by_cosine() -> None:
    docs = np.eye(4, dtype=np.float32)
    cand = Ranking(np.array([[0, 1, 2, -1]]), np.zeros((1, 4), dtype=np.float32))
    out = similarity_ranking(cand, np.array([[0.0, 0.6, 0.8, 0.0]], dtype=np.float32), docs)
    assert out.rows.tolist() == [[2, 1, 0, -1]]


def test_prompts_and_answer_cleaning() -> None:
    msgs = rationale_prompt("Capital of Peru?", ["Lima"])
    assert [m["role"] for m in msgs] == ["system", "user", "user", "user"]
    assert msgs[2]["content"] == "Answer: Lima" and msgs[3]["content"].startswith("Rationale:")
    with pytest.raises(DataError, match="no gold answer"):
        rationale_prompt("q", [])
    p = answer_prompt("Which?", ["d1", "d2"], ["x", "y", "z", "w"])
    assert "Doc 2: d2" in p[1]["content"] and "B. y" in p[1]["content"] and "letter" in p[0]["content"]
    assert clean_answer("\n The answer is: Lima.\nmore") == "Lima."
    assert clean_answer("Answer: Sol") == "Sol" and clean_answer("   ") == ""
