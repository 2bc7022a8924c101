"""Mining in a rank window without judged positives, random negatives, and the false-negative audit."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.errors import ConfigError
from recwise.retrieval import Ranking, false_negative_audit, mine, random_negatives

RANKING = Ranking(np.array([[5, 1, 7, 2, 9], [3, 4, 0, 8, 6]]), np.zeros((2, 5), dtype=np.float32))
POSITIVES = {10: {7: 2, 5: 1}, 11: {0: 1}}


def test_mine_keeps_the_window_minus_positives() -> None:
    got = mine(RANKING, [10, 11], POSITIVES, window=(2, 4))
    assert got[10].tolist() == [1, 2]  # ranks 2-4 are 1, 7, 2; 7 is judged relevant
    assert got[11].tolist() == [4, 8]  # 4, 0, 8; 0 is judged relevant
    with pytest.raises(ConfigError, match="rank window"):
        mine(RANKING, [10, 11], POSITIVES, window=(3, 2))


def test_audit_counts_judged_documents_per_window() -> None:
    audit = false_negative_audit(RANKING, [10, 11], POSITIVES, [(1, 1), (2, 5)])
    assert audit[0] == {"lo": 1, "hi": 1, "documents": 2, "relevant": 1, "share": 0.5}
    assert (audit[1]["documents"], audit[1]["relevant"]) == (8, 2)


def test_random_negatives_avoid_positives() -> None:
    got = random_negatives(12, [10, 11], POSITIVES, 9, np.random.default_rng(0))
    assert len(got[10]) == 9 and not {5, 7} & set(got[10].tolist()) and len(set(got[10].tolist())) == 9
    assert 0 not in got[11].tolist()
