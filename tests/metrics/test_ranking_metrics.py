"""Ranking metrics on hand-computed rankings, tie handling and history masking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recwise.metrics.ranking import mask_history, ranking_metrics, target_ranks


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
