"""Paired significance tests on planted data: a clearly better model, identical models, swapped order."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from recwise.errors import DataError
from recwise.metrics import paired_bootstrap_auc, paired_bootstrap_mean, paired_seed_test
from recwise.metrics.significance import _resampled_auc


def _planted(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels from a latent score; model a sees it with little noise, model b with much more."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(np.float32)
    good = (z + rng.normal(0, 0.3, n)).astype(np.float32)
    poor = (z + rng.normal(0, 2.0, n)).astype(np.float32)
    return y, good, poor


def test_resampled_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n), 1)  # 11 distinct values: many ties, also across classes
    np.testing.assert_allclose(_resampled_auc(y, score, np.ones((n, 1), np.int32)), [roc_auc_score(y, score)],
                               rtol=0, atol=1e-12)
    idx = rng.integers(0, n, (25, n))
    counts = np.stack([np.bincount(i, minlength=n) for i in idx], axis=1)  # (rows, resamples)
    want = [roc_auc_score(y[i], score[i]) for i in idx]
    np.testing.assert_allclose(_resampled_auc(y, score, counts), want, rtol=0, atol=1e-12)
    # a resample holding one class has no AUC
    only_pos = np.where(y == 1, 1, 0)[:, None]
    assert np.isnan(_resampled_auc(y, score, only_pos)[0])


def test_bootstrap_finds_the_better_model_and_is_antisymmetric() -> None:
    y, good, poor = _planted()
    res = paired_bootstrap_auc(y, good, poor, n_resamples=1000, seed=0)
    assert res.mean_diff == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, poor), abs=1e-12)
    assert res.mean_diff > 0 and res.p_value < 0.01 and 0 < res.ci_low < res.mean_diff < res.ci_high
    assert (res.n_resamples, res.n_rows) == (1000, len(y))
    swapped = paired_bootstrap_auc(y, poor, good, n_resamples=1000, seed=0)
    assert swapped.mean_diff == pytest.approx(-res.mean_diff, abs=1e-12)
    assert (swapped.ci_low, swapped.ci_high) == pytest.approx((-res.ci_high, -res.ci_low), abs=1e-12)
    assert swapped.p_value == res.p_value
    assert paired_bootstrap_auc(y, good, poor, n_resamples=1000, seed=0) == res  # same seed, same test


def test_bootstrap_of_identical_models_and_of_noise() -> None:
    y, good, _ = _planted()
    same = paired_bootstrap_auc(y, good, good.copy(), n_resamples=200)
    assert (same.mean_diff, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    # two equally good models (independent noise of the same size): no significant difference
    rng = np.random.default_rng(5)
    a, b = good + rng.normal(0, 1, len(good)), good + rng.normal(0, 1, len(good))
    assert paired_bootstrap_auc(y, a, b, n_resamples=500).p_value > 0.01


def test_bootstrap_averages_seeds_on_the_same_rows() -> None:
    y, _, _ = _planted(1500)
    rng = np.random.default_rng(2)
    z = np.where(y == 1, 1.0, 0.0)
    a = np.stack([z + rng.normal(0, 0.8, len(y)) for _ in range(3)])  # 3 seeds of a better model
    b = np.stack([z + rng.normal(0, 1.6, len(y)) for _ in range(2)])  # 2 seeds of a worse one
    res = paired_bootstrap_auc(y, a, b, n_resamples=300, seed=3)
    want = np.mean([roc_auc_score(y, p) for p in a]) - np.mean([roc_auc_score(y, p) for p in b])
    assert res.mean_diff == pytest.approx(want, abs=1e-12) and res.p_value < 0.01
    with pytest.raises(DataError, match="one probability per row"):
        paired_bootstrap_auc(y, a[:, :-1], b)
    with pytest.raises(DataError, match="single class"):
        paired_bootstrap_auc(np.ones(10), np.arange(10.0), np.arange(10.0))


def test_bootstrap_of_a_mean_is_paired_over_rows() -> None:
    # per-user gains of two models that share most of their variation (the same hard and easy users)
    rng = np.random.default_rng(4)
    user = rng.random(3000)
    a = np.stack([np.clip(user + 0.02 + rng.normal(0, 0.05, 3000), 0, 1) for _ in range(3)])
    b = np.stack([np.clip(user + rng.normal(0, 0.05, 3000), 0, 1) for _ in range(2)])
    res = paired_bootstrap_mean(a, b, n_resamples=2000, seed=1)
    d = a.mean(0) - b.mean(0)
    assert res.mean_diff == pytest.approx(a.mean() - b.mean(), abs=1e-12) and res.n_rows == 3000
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))  # the normal-theory paired interval
    assert res.ci_low == pytest.approx(d.mean() - half, abs=0.15 * half)
    assert res.ci_high == pytest.approx(d.mean() + half, abs=0.15 * half)
    assert res.p_value < 0.001  # unpaired, the spread of the users alone (sd 0.29) would swamp +0.02
    assert paired_bootstrap_mean(a, b, n_resamples=2000, seed=1) == res
    flipped = paired_bootstrap_mean(b, a, n_resamples=2000, seed=1)
    assert flipped.mean_diff == pytest.approx(-res.mean_diff) and flipped.ci_low == pytest.approx(-res.ci_high)
    same = paired_bootstrap_mean(a[0], a[0].copy(), n_resamples=50)
    assert (same.mean_diff, same.p_value) == (0.0, 1.0)
    with pytest.raises(DataError, match="same non-empty rows"):
        paired_bootstrap_mean(a[:, :-1], b)
    with pytest.raises(DataError, match="NaN or inf"):
        paired_bootstrap_mean(np.r_[a[0, :-1], np.nan], b[0])


def test_paired_seed_test() -> None:
    rng = np.random.default_rng(0)
    b = 0.77 + rng.normal(0, 0.003, 5)
    a = b + 0.01 + rng.normal(0, 0.001, 5)  # better on every seed, by about 0.01
    res = paired_seed_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert res.n == 5 and res.mean_diff == pytest.approx(float(np.mean(a - b)))
    assert (res.t, res.p_value) == pytest.approx((ref.statistic, ref.pvalue)) and res.p_value < 0.01
    flipped = paired_seed_test(b, a)
    assert (flipped.mean_diff, flipped.t, flipped.p_value) == pytest.approx((-res.mean_diff, -res.t, res.p_value))
    same = paired_seed_test(list(a), list(a))
    assert (same.mean_diff, same.t, same.p_value) == (0.0, 0.0, 1.0)
    one = paired_seed_test([0.78], [0.77])
    assert one.n == 1 and math.isnan(one.p_value) and math.isnan(one.t)
    # unpaired noise around the same mean: not significant
    c = 0.77 + rng.normal(0, 0.003, 5)
    assert paired_seed_test(c, b).p_value > 0.01
    with pytest.raises(DataError, match="equally long"):
        paired_seed_test([0.1, 0.2], [0.1])
