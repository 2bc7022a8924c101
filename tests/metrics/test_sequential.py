"""Metrics by popularity bin of the target item (recwise.metrics.sequential)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recwise.data.sequence import build_sequences, eval_inputs
from recwise.metrics.sequential import (
    evaluate_by_popularity,
    popularity_bins,
    segment_metrics,
    train_item_counts,
)
from recwise.tasks.sequential import evaluate


def test_bins_hold_equal_interaction_mass() -> None:
    counts = np.array([0, 50, 30, 10, 5, 3, 1, 1, 0])  # padding, 8 items (the last never seen)
    bins = popularity_bins(counts, n_bins=4)
    assert bins[0] == 0
    # shares before each item: 0, .5, .8, .9, .95, ... -> item 1 alone carries the first half
    assert bins.tolist() == [0, 1, 3, 4, 4, 4, 4, 4, 4]
    mass = np.bincount(bins[1:], weights=counts[1:], minlength=5)[1:]
    assert mass[0] == 50 and mass.sum() == counts.sum()


def test_bins_are_monotone_in_popularity_and_ten_by_default() -> None:
    rng = np.random.default_rng(0)
    counts = np.concatenate([[0], rng.zipf(1.5, 500)])
    bins = popularity_bins(counts)
    order = np.argsort(-counts[1:], kind="stable")
    assert np.all(np.diff(bins[1:][order]) >= 0) and bins[1:].min() == 1 and bins.max() == 10
    mass = np.bincount(bins[1:], weights=counts[1:])[1:] / counts.sum()
    assert mass[:-1].max() < 0.1 + counts.max() / counts.sum() + 1e-9  # no bin much over its tenth (one item's slack)


def test_train_counts_skip_validation_and_test_targets() -> None:
    # user 0: 1 2 3 4 (train 1 2); user 1: 2 5 (too short: all train)
    seqs = build_sequences(np.array([0, 0, 0, 0, 1, 1]), np.array([1, 2, 3, 4, 2, 5]), np.arange(6.0))
    counts = train_item_counts(seqs)
    tok = list(seqs.item_tokens)
    got = {int(tok[i]): int(c) for i, c in enumerate(counts) if i}
    assert got == {1: 1, 2: 2, 3: 0, 4: 0, 5: 1}


class _Fixed(nn.Module):
    """Scores = a fixed item vector for everyone (a popularity model)."""

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__()
        self.s = nn.Parameter(scores.float())

    def forward(self, batch):  # noqa: ANN001, ANN202
        return self.s.expand(len(batch["item_seq"]), -1).clone()


def test_segments_partition_users_and_match_the_overall_protocol() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items = 120, 40
    lengths = rng.integers(3, 15, n_users)
    user = np.repeat(np.arange(n_users), lengths)
    item = rng.zipf(1.3, len(user)) % n_items
    seqs = build_sequences(user, item, np.arange(len(user), dtype=float))
    test = eval_inputs(seqs, "test", 10)
    items = torch.from_numpy(seqs.items)
    counts = train_item_counts(seqs)
    model = _Fixed(torch.from_numpy(np.log1p(counts)))
    res = evaluate_by_popularity(model, test, items, popularity_bins(counts), mask=True)
    ref = evaluate(model, test, items, mask=True)["all"]
    assert res["all"]["ndcg@10"] == pytest.approx(ref["ndcg@10"])
    assert res["all"]["hit@10"] == pytest.approx(ref["hit@10"])
    per_bin = [res[f"pop={b}"]["users"] for b in range(1, 11)]
    assert sum(per_bin) == res["all"]["users"] == res["pop=warm"]["users"] + res["pop=cold"]["users"]
    assert res["hist=short"]["users"] + res["hist=rest"]["users"] == res["all"]["users"]
    # a popularity ranker does better on popular targets than on cold ones
    assert res["pop=warm"]["hit@10"] > res["pop=cold"]["hit@10"]
    # weighted mean over bins recovers the overall figure
    w = np.array(per_bin)
    vals = np.array([res[f"pop={b}"]["ndcg@10"] for b in range(1, 11)])
    assert np.nansum(w * vals) / w.sum() == pytest.approx(res["all"]["ndcg@10"])


def test_segment_metrics_from_ranks() -> None:
    bins = np.array([0, 1, 1, 2])
    res = segment_metrics(np.array([0, 50, 0]), np.array([1, 3, 2]), bins, ks=(10,), groups=None)
    assert res["pop=1"]["hit@10"] == 1.0 and res["pop=2"]["hit@10"] == 0.0 and res["all"]["users"] == 3
