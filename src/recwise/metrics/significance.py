"""Is model A better than model B? Two paired tests for the tables in the docs.

* :func:`paired_seed_test`: a paired t-test over seeds. Each seed gives one metric value per model
  (same seed, same split, same data order for both), and the test asks whether the mean of the
  per-seed differences is far from 0 given their spread. With 3 seeds it has 2 degrees of freedom,
  so only large, consistent differences come out significant.
* :func:`paired_bootstrap_auc`: a paired bootstrap over test rows. Both models' predictions (one
  row of probabilities per seed) are scored on the same resampled rows, so the test captures how
  much the AUC difference moves with the test set; with several seeds it bootstraps the difference
  of the seed-averaged AUCs. The AUC of each resample is computed exactly (ties count one half,
  as in scikit-learn) from the resample counts of the rows, without a Python loop per resample.
* :func:`paired_bootstrap_mean`: the same paired bootstrap for a metric that is a mean of per-row
  values (Hit@k, NDCG@k, MRR@k of one target per user: :func:`recwise.metrics.ranking.rank_gains`).

Both answer for one test set and one protocol; neither says the difference carries over to
another dataset.

Examples
--------
>>> paired_seed_test([0.781, 0.779, 0.784], [0.771, 0.770, 0.776])          # doctest: +SKIP
PairedTest(mean_diff=0.009, t=..., p_value=..., n=3)
>>> paired_bootstrap_auc(y, prob_star, prob_mmoe, n_resamples=1000)          # doctest: +SKIP
BootstrapTest(mean_diff=..., ci_low=..., ci_high=..., p_value=..., n_resamples=1000, n_rows=...)
>>> paired_bootstrap_mean(rank_gains(ranks_sigma, "ndcg@10"), rank_gains(ranks_sasrec, "ndcg@10"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recwise.errors import DataError

__all__ = ["BootstrapTest", "PairedTest", "paired_bootstrap_auc", "paired_bootstrap_mean", "paired_seed_test"]


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test over seeds: ``mean_diff`` = mean of ``a - b``; two-sided ``p_value``."""

    mean_diff: float
    t: float
    p_value: float
    n: int


@dataclass(frozen=True)
class BootstrapTest:
    """A paired bootstrap of ``metric(a) - metric(b)`` over test rows (AUC, or a mean of per-row values).

    ``mean_diff`` is the difference on all rows (of the seed-averaged metrics); ``ci_low``/``ci_high`` the
    2.5 and 97.5 percentiles of the resampled differences; ``p_value`` twice the share of resamples
    whose difference does not have the sign of ``mean_diff`` (1 when ``mean_diff`` is 0), capped at 1;
    0 means below ``2 / n_resamples``, the resolution of the test.
    ``n_resamples`` counts the resamples used (for AUC, one holding a single class has none and is left out).
    """

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_resamples: int
    n_rows: int


def paired_seed_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired two-sided t-test of per-seed values ``a[i]`` vs ``b[i]`` (same seed ``i`` for both).

    Fewer than 2 pairs give ``t`` and ``p_value`` NaN. Differences that are all equal give
    ``t = 0, p = 1`` when they are 0 and ``t = ±inf, p = 0`` otherwise (scipy returns NaN for the
    first).
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise DataError(f"paired_seed_test needs two equally long 1-D sequences (one value per seed); "
                        f"got shapes {x.shape} and {y.shape}")
    d = x - y
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return PairedTest(mean, float("nan"), float("nan"), n)
    if np.all(d == d[0]):
        if d[0] == 0:
            return PairedTest(0.0, 0.0, 1.0, n)
        return PairedTest(mean, math.copysign(math.inf, mean), 0.0, n)
    res = stats.ttest_rel(x, y)
    return PairedTest(mean, float(res.statistic), float(res.pvalue), n)


def _resampled_auc(y: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of R resamples of the rows ``(y, score)``; resample ``r`` holds row i ``counts[i, r]`` times.

    Exact with ties, in integers: ``AUC = sum over positives i of count_i * (2 * negatives scored
    below i + negatives tied with i) / (2 * positives * negatives)``, every row weighted by its
    count. ``counts`` is (rows, R); returns (R,), NaN where a resample lacks a class.
    """
    order = np.argsort(score, kind="stable")
    s, pos = score[order], np.asarray(y, dtype=bool)[order]
    new_value = np.r_[True, s[1:] != s[:-1]]
    first = np.flatnonzero(new_value)  # first sorted index of each run of equal scores
    last = np.r_[first[1:], len(s)] - 1  # and its last
    run = (np.cumsum(new_value) - 1)[pos]  # the run of each positive
    c = counts[order]
    neg = c * (~pos)[:, None]
    upto = np.cumsum(neg, axis=0)  # negatives at or before each sorted index
    below = upto[first[run]] - neg[first[run]]  # negatives in lower runs
    tied = upto[last[run]] - below  # negatives in the positive's own run
    c_pos = c[pos].astype(np.int64)
    n_pos, n_neg = c_pos.sum(0), upto[-1].astype(np.int64)
    num = (c_pos * (2 * below + tied)).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = num / (2.0 * n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _as_seeds(prob: np.ndarray, n: int, name: str) -> np.ndarray:
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != n:
        raise DataError(f"{name} must hold one probability per row of y_true ({n}), as (rows,) or "
                        f"(seeds, rows); got shape {np.shape(prob)}")
    return p


def paired_bootstrap_auc(y_true: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray, *, n_resamples: int = 1000,
                         seed: int = 0, chunk: int = 64) -> BootstrapTest:
    """Paired bootstrap test of ``AUC(prob_a) - AUC(prob_b)`` on the rows ``y_true``.

    Parameters
    ----------
    y_true : (rows,) binary labels.
    prob_a, prob_b : (rows,) scores, or (seeds, rows) for one run per seed: the difference is then
        of the seed-averaged AUCs, every seed scored on the same resampled rows. The two may hold
        different numbers of seeds. Any monotone score (logit or probability) gives the same AUC.
    n_resamples : bootstrap resamples (rows drawn with replacement, as many as there are rows).
    seed : seed of the resampling generator (the same seed gives the same test).
    chunk : resamples computed at once (memory: a few arrays of ``4 * chunk * rows`` bytes).
    """
    y = np.asarray(y_true)
    if y.ndim != 1 or not len(y):
        raise DataError(f"y_true must be a non-empty 1-D array of 0/1 labels; got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError("y_true must hold binary labels 0/1")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise DataError("y_true holds a single class: AUC is undefined, so there is nothing to test")
    if n_resamples < 1:
        raise DataError(f"n_resamples must be >= 1; got {n_resamples}")
    n = len(y)
    pa, pb = _as_seeds(prob_a, n, "prob_a"), _as_seeds(prob_b, n, "prob_b")

    def diff(counts: np.ndarray) -> np.ndarray:
        auc_a = np.mean([_resampled_auc(y, p, counts) for p in pa], axis=0)
        auc_b = np.mean([_resampled_auc(y, p, counts) for p in pb], axis=0)
        return auc_a - auc_b

    dtype = np.int32 if n < 2**30 else np.int64  # counts and running sums of counts stay below n
    observed = float(diff(np.ones((n, 1), dtype=dtype))[0])
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(r, n))  # resample k draws the rows idx[k]
        counts = np.bincount((idx * r + np.arange(r)[:, None]).ravel(), minlength=n * r).reshape(n, r)
        diffs.append(diff(counts.astype(dtype, copy=False)))
    return _summary(observed, np.concatenate(diffs), n)


def _summary(observed: float, d: np.ndarray, n: int) -> BootstrapTest:
    """The test from the observed difference and the resampled ones (NaN resamples left out)."""
    d = d[~np.isnan(d)]
    if not len(d):
        return BootstrapTest(observed, float("nan"), float("nan"), float("nan"), 0, n)
    if observed == 0:
        p = 1.0
    else:
        other = np.count_nonzero(d <= 0) if observed > 0 else np.count_nonzero(d >= 0)
        p = min(1.0, 2.0 * other / len(d))
    lo, hi = np.percentile(d, [2.5, 97.5])
    return BootstrapTest(observed, float(lo), float(hi), float(p), len(d), n)


def paired_bootstrap_mean(values_a: np.ndarray, values_b: np.ndarray, *, n_resamples: int = 1000,
                          seed: int = 0, chunk: int = 256) -> BootstrapTest:
    """Paired bootstrap test of ``mean(values_a) - mean(values_b)``: per-row values of a metric that
    is their mean (a user's NDCG@10 gain, say).

    ``values_a``, ``values_b``: (rows,) or (seeds, rows), one row of values per seed, the same rows in
    the same order for both (the two may hold different numbers of seeds). Rows are resampled with
    replacement, the same rows for both models and every seed; the difference is of the seed-averaged
    means. ``seed`` seeds the resampling (the same seed gives the same test).
    """
    a, b = np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)
    a, b = (a[None, :] if a.ndim == 1 else a), (b[None, :] if b.ndim == 1 else b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not a.shape[1] or not a.shape[0] or not b.shape[0]:
        raise DataError(f"paired_bootstrap_mean needs values over the same non-empty rows, as (rows,) or "
                        f"(seeds, rows); got shapes {np.shape(values_a)} and {np.shape(values_b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("paired_bootstrap_mean: the per-row values hold NaN or inf")
    if n_resamples < 1:
        raise DataError(f"n_resamples must be >= 1; got {n_resamples}")
    d = a.mean(0) - b.mean(0)  # the mean over rows commutes with the mean over seeds
    n = len(d)
    rng = np.random.default_rng(seed)
    diffs = [d[rng.integers(0, n, size=(min(chunk, n_resamples - s), n))].mean(1)
             for s in range(0, n_resamples, chunk)]
    return _summary(float(d.mean()), np.concatenate(diffs), n)
