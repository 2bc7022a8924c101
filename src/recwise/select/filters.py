"""Cheap filter baselines: chi-square and mutual information (ERASE's later extra baselines).

ERASE's authors report chi2 and MI results (Jia-py/ERASE ``chi2&MI results.csv``) but released
no code for them, so these follow scikit-learn's functions with categorical handling:

* ``chi2``: per field, Pearson's chi-square test of independence between the field's values and
  the label (``sklearn.feature_selection.chi2`` on the field's one-hot columns, summed: that sum
  is the contingency-table statistic). The score is ``-log10 p`` with (values seen - 1) degrees of
  freedom, so a field with many values does not win by its degrees of freedom alone.
  ``score=statistic`` ranks by the raw statistic. ``ids_as_numbers=true``: ``chi2`` on the raw
  label-encoded ids treated as counts (what a ``SelectKBest(chi2)`` on ERASE's table computes).
* ``mi``: ``sklearn.feature_selection.mutual_info_classif`` with sparse fields declared discrete
  (plug-in estimate on the values) and dense ones continuous (k-NN estimate).
  ``correction=miller_madow`` subtracts the plug-in estimator's first-order bias
  ((values - 1)(classes - 1) / 2n nats) from discrete fields (our addition; plain sklearn MI
  favours many-valued fields). ``ids_as_numbers=true``: every field treated as continuous.

Dense fields enter chi2 as ``dense_bins`` quantile bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from recwise.data.schema import FieldKind
from recwise.data.table import Table
from recwise.select.base import FieldSelector, register_selector
from recwise.select.shallow import _check_positive, _label, code_matrix, sparse_mask, subsample

__all__ = ["chi2_field_scores"]


def _binned(table: Table, field: str, bins: int) -> np.ndarray:
    col = np.asarray(table.columns[field])
    if table.schema[field].kind == FieldKind.SPARSE:
        return col.astype(np.int64)
    edges = np.unique(np.quantile(col, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, col, side="right").astype(np.int64)


def chi2_field_scores(table: Table, fields: list[str], *, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per field: (Pearson chi-square statistic of values x label, degrees of freedom)."""
    y = _label(table).astype(np.int64)
    stats, dofs = np.zeros(len(fields)), np.zeros(len(fields))
    for i, f in enumerate(fields):
        codes = _binned(table, f, bins)
        _, inv = np.unique(codes, return_inverse=True)
        observed = np.zeros((inv.max() + 1, 2))
        np.add.at(observed, (inv, y), 1.0)
        expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(expected > 0, (observed - expected) ** 2 / expected, 0.0)
        stats[i] = terms.sum()
        dofs[i] = max(observed.shape[0] - 1, 1) * max(int((observed.sum(0) > 0).sum()) - 1, 1)
    return stats, dofs


@dataclass(frozen=True)
class Chi2Config:
    score: Literal["pvalue", "statistic"] = "pvalue"
    dense_bins: int = 10
    ids_as_numbers: bool = False
    max_rows: int | None = None


@register_selector("chi2")
class Chi2Selector(FieldSelector):
    Config = Chi2Config
    family = "filter"

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        c = self.config
        _check_positive(self.name, c.max_rows, "max_rows")
        t = subsample(train, c.max_rows, self.seed)
        if c.ids_as_numbers:
            from sklearn.feature_selection import chi2

            x = code_matrix(t, self.fields_)
            stat, _ = chi2(np.maximum(x, 0.0), _label(t))
            return np.nan_to_num(stat, nan=0.0)
        stat, dof = chi2_field_scores(t, self.fields_, bins=c.dense_bins)
        if c.score == "statistic":
            return stat
        return -_chi2_logsf(stat, dof) / np.log(10.0)


def _chi2_logsf(stat: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """log P(X > stat) for X ~ chi2(dof); where it underflows to -inf, the Wilson-Hilferty normal
    approximation (cube root of chi2/dof is near normal), whose log tail stays finite and ordered."""
    from scipy.stats import chi2 as chi2_dist
    from scipy.stats import norm

    out = chi2_dist.logsf(stat, dof)
    bad = ~np.isfinite(out)
    if bad.any():
        k, x = dof[bad], stat[bad]
        z = ((x / k) ** (1.0 / 3.0) - (1.0 - 2.0 / (9.0 * k))) / np.sqrt(2.0 / (9.0 * k))
        out[bad] = norm.logsf(z)
    return out


@dataclass(frozen=True)
class MIConfig:
    n_neighbors: int = 3
    correction: Literal["none", "miller_madow"] = "none"
    ids_as_numbers: bool = False
    max_rows: int | None = None


@register_selector("mi")
class MISelector(FieldSelector):
    Config = MIConfig
    family = "filter"

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        from sklearn.feature_selection import mutual_info_classif

        c = self.config
        _check_positive(self.name, c.max_rows, "max_rows")
        t = subsample(train, c.max_rows, self.seed)
        x = code_matrix(t, self.fields_)
        y = _label(t).astype(np.int64)
        mask = np.zeros(len(self.fields_), dtype=bool) if c.ids_as_numbers else sparse_mask(t, self.fields_)
        mi = mutual_info_classif(x, y, discrete_features=mask, n_neighbors=c.n_neighbors, random_state=self.seed)
        if c.correction == "miller_madow":
            n_classes = len(np.unique(y))
            for i in np.flatnonzero(mask):
                mi[i] -= (len(np.unique(x[:, i])) - 1) * (n_classes - 1) / (2.0 * len(y))
        return mi
