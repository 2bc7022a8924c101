"""Ranking metrics on hand-computed rankings, tie handling and history masking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recwise.metrics.ranking import mask_history, rank_gains, ranking_metrics, target_ranks


def test_ranks_and_metrics_by_hand() -> None:
    scores = torch.tensor([[0.0, 0.9, 0.5, 0.1, 0.7],   # target 2: above it 0.9, 0.7 -> rank 2
                           [0.0, 0.1, 0.2, 0.3, 0.4],   # target 4: rank 0
                           [0.0, 0.5, 0.5, 0.5, 0.1]])  # target 3: ties with 1, 2 -> pessimistic rank 2
    ranks = target_ranks(scores, torch.tensor([2, 4, 3])).numpy()
    assert ranks.tolist() == [2, 0, 2]
    m = ranking_metrics(ranks, ks=(1, 3))
    assert m["hit@1"] == pytest.approx(1 / 3)
    assert m["hit@3"] == pytest.approx(1.0)
    assert m["ndcg@3"] == pytest.approx((2 / math.log2(4) + 1) / 3)
    assert m["mrr@3"] == pytest.approx((1 / 3 + 1 + 1 / 3) / 3)
    assert m["ndcg@1"] == pytest.approx(1 / 3)


def test_per_user_gains_average_to_the_metrics() -> None:
    ranks = np.array([0, 1, 2, 9, 10, 25, 3, 0])
    m = ranking_metrics(ranks, ks=(1, 10, 20))
    for name, value in m.items():
        gains = rank_gains(ranks, name)
        assert gains is not None and gains.shape == ranks.shape and gains.mean() == pytest.approx(value, abs=1e-15)
    assert rank_gains(ranks, "ndcg@10").tolist()[:3] == pytest.approx([1.0, 1 / math.log2(3), 0.5])
    assert rank_gains(ranks, "mrr@10")[4] == 0.0 and rank_gains(ranks, "hit@20")[4] == 1.0
    assert all(rank_gains(ranks, m) is None for m in ("auc", "ndcg", "ndcg@0", "recall@10", "ndcg@x"))


def test_constant_scores_rank_last() -> None:
    r = target_ranks(torch.zeros(1, 10), torch.tensor([4])).numpy()
    assert r.tolist() == [9]
    assert ranking_metrics(np.array(r), ks=(5,))["hit@5"] == 0.0


def test_history_masking_changes_ranking() -> None:
    items = torch.tensor([1, 2, 3, 4, 2, 2])  # user 0 history 1,2,3 ; user 1 history 2,2
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.7, 0.1, 0.5],
                           [0.0, 0.3, 0.9, 0.1, 0.2, 0.4]])
    target = torch.tensor([5, 2])
    before = target_ranks(scores, target).tolist()
    masked = mask_history(scores.clone(), items, torch.tensor([0, 4]), torch.tensor([3, 6]), target)
    after = target_ranks(masked, target).tolist()
    assert before == [3, 0]
    assert after == [0, 0]  # items 1..3 removed above the target; the repeated target 2 keeps its score
    assert torch.isinf(masked[0, 1:4]).all() and masked[1, 2] == 0.9
