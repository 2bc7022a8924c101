"""Sensitivity selectors (SHARK, SFS) on planted-truth data; SHARK batched = one row at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.data.table import BatchLoader
from recwise.select import FieldSelector, get_selector
from recwise.select.sfs import sfs_saliency
from recwise.select.shark import shark_importance

from ._deep_helpers import FAST, planted


@pytest.fixture(scope="module")
def shark() -> FieldSelector:
    p = planted(0)
    return get_selector("shark", train=FAST, seed=0).fit(p.part("train"), p.part("val"))


def test_shark_ranks_the_planted_fields_first(shark: FieldSelector) -> None:
    p = planted(0)
    assert set(shark.ranking_[: len(p.signal)]) == set(p.signal)
    assert np.all(shark.scores_ >= 0)


def test_shark_batched_equals_one_row_at_a_time(shark: FieldSelector) -> None:
    data = planted(0).part("val").take(np.arange(400)).tensors()
    one = shark_importance(shark.model_, data, 1)
    for bs in (7, 400):
        np.testing.assert_allclose(shark_importance(shark.model_, data, bs), one, rtol=1e-5, atol=1e-9)


def test_shark_matches_the_released_formula_by_hand(shark: FieldSelector) -> None:
    """Per row: |sum_e dL/demb * (mean - emb)| with L the row's own BCE, the gradient read from autograd
    of a single-row forward (what the released loop reads from the embedding table's .grad)."""
    model = shark.model_.eval()
    data = planted(0).part("val").take(np.arange(50)).tensors()
    with torch.no_grad():
        mean = model.embed(data).mean(0)
    total = torch.zeros(model.num_fields)
    for b in BatchLoader(data, 1):
        emb = model.embed(b).detach().requires_grad_(True)
        p = torch.sigmoid(model.head(emb))
        torch.nn.functional.binary_cross_entropy(p, b["label"]).backward()
        total += (emb.grad * (mean - emb.detach())).sum(-1).abs().squeeze(0)
    np.testing.assert_allclose(shark_importance(model, data, 50), (total / 50).numpy(), rtol=1e-4, atol=1e-8)


def test_shark_max_rows_scores_a_prefix(shark: FieldSelector) -> None:
    p = planted(0)
    sel = get_selector("shark", {"max_rows": 300}, train=FAST, seed=0)
    scores = sel.score_model(shark.model_, p.part("val"))
    expected = shark_importance(shark.model_, p.part("val").take(np.arange(300)).tensors(), 4096)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_sfs_ranks_the_planted_fields_first_and_normalises() -> None:
    p = planted(0)
    sel = get_selector("sfs", train=FAST, seed=0).fit(p.part("train"), p.part("val"))
    assert set(sel.ranking_[: len(p.signal)]) == set(p.signal)
    assert np.all(sel.scores_ >= 0) and sel.scores_.sum() == pytest.approx(1.0)
    val = p.part("val").tensors()
    # the released validation loader shuffles: the selector reads a permutation seeded by its seed
    np.testing.assert_allclose(sel.scores_, sfs_saliency(sel.model_, val, FAST.batch_size, 100, shuffle_seed=0))
    # num_batch_sampling: only the first batches count
    one = sfs_saliency(sel.model_, val, 512, 1)
    first = {k: v[:512] for k, v in val.items()}
    np.testing.assert_allclose(one, sfs_saliency(sel.model_, first, 512, 100), rtol=1e-6)
    assert not np.allclose(one, sfs_saliency(sel.model_, val, 512, 3))


def test_sensitivity_selectors_are_deterministic() -> None:
    p = planted(1, 6000)
    a = get_selector("sfs", train=FAST, seed=2).fit(p.part("train"), p.part("val"))
    b = get_selector("sfs", train=FAST, seed=2).fit(p.part("train"), p.part("val"))
    np.testing.assert_array_equal(a.scores_, b.scores_)
