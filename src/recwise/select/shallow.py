"""Shallow selectors of ERASE: Lasso, GBDT, RandomForest, XGBoost (+ LightGBM as an extra).

Each fits a scikit-learn / xgboost / lightgbm model on the training split and reads one
importance per field. Defaults are ERASE's (``models/config.yaml``, ``utils.machine_learning_selection``).

ERASE feeds these models the label-encoded id table as numbers: a user id of 17 is "between"
16 and 18. That behaviour stays available as ``ids_as_numbers=true``; by default ids are
handled as categories, per method:

* ``lasso``: one-hot (sparse) design; the field's score is the standard deviation over training
  rows of its additive term (coef[value] for a sparse field, coef * x for a dense one), which does
  not grow with the number of values. As released: ``|coef|`` on raw codes.
* ``gbdt``, ``rf``: each sparse field is target-encoded (scikit-learn ``TargetEncoder``,
  cross-fitted, so a tree sees one ordered column per field whose order means something);
  impurity importances. As released: trees split on raw codes.
* ``xgboost``: target-encoded fields as for the trees above; gain importance (xgboost's default
  for trees). ``categorical=native`` uses xgboost's own categorical splits instead: on planted data
  it ranks a 500-value pure-noise field above real signal (each split can carve an arbitrary
  subset of values, which overfits many-valued fields), so it is not the default. As released:
  raw codes.
* ``lightgbm`` (extra, not in ERASE): target-encoded fields, gain importance; ``categorical=native``
  (LightGBM's categorical features) has the same high-cardinality bias as xgboost's.

Dense fields are passed as they are in every variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recwise.data.schema import FieldKind
from recwise.data.table import Table
from recwise.errors import ConfigError
from recwise.select.base import FieldSelector, register_selector

__all__ = ["code_matrix", "onehot_matrix", "sparse_mask", "subsample", "target_encoded"]


# ------------------------------------------------------------------------------ encodings


def sparse_mask(table: Table, fields: list[str]) -> np.ndarray:
    """True where the field is a sparse (categorical) one."""
    return np.array([table.schema[f].kind == FieldKind.SPARSE for f in fields])


def code_matrix(table: Table, fields: list[str]) -> np.ndarray:
    """(n, F) float64: raw label-encoded ids and dense values, as ERASE's table."""
    return np.stack([np.asarray(table.columns[f], dtype=np.float64) for f in fields], axis=1)


def onehot_matrix(table: Table, fields: list[str]) -> tuple[sp.csr_matrix, np.ndarray]:
    """CSR one-hot of the sparse fields (one column per vocabulary value) plus the dense columns;
    returns the matrix and, per column, the index of its field."""
    n = len(table)
    blocks, owner = [], []
    rows = np.arange(n)
    for i, f in enumerate(fields):
        fld = table.schema[f]
        col = np.asarray(table.columns[f])
        if fld.kind == FieldKind.SPARSE:
            v = fld.vocab_size
            blocks.append(sp.csr_matrix((np.ones(n), (rows, col.astype(np.int64))), shape=(n, v)))
            owner.extend([i] * v)
        else:
            blocks.append(sp.csr_matrix(col.astype(np.float64).reshape(-1, 1)))
            owner.append(i)
    return sp.hstack(blocks, format="csr"), np.array(owner)


def target_encoded(table: Table, fields: list[str], y: np.ndarray, seed: int) -> np.ndarray:
    """(n, F): sparse fields replaced by their cross-fitted target encoding, dense fields as is."""
    from sklearn.preprocessing import TargetEncoder

    x = code_matrix(table, fields)
    mask = sparse_mask(table, fields)
    if mask.any():
        from sklearn.model_selection import StratifiedKFold

        enc = TargetEncoder(target_type="binary", cv=StratifiedKFold(5, shuffle=True, random_state=seed))
        x[:, mask] = enc.fit_transform(x[:, mask].astype(np.int64), y)
    return x


def subsample(table: Table, max_rows: int | None, seed: int) -> Table:
    """At most ``max_rows`` rows drawn without replacement (seeded); all rows when None."""
    if max_rows is None or len(table) <= max_rows:
        return table
    idx = np.sort(np.random.default_rng(seed).choice(len(table), max_rows, replace=False))
    return table.take(idx)


def _label(table: Table) -> np.ndarray:
    return np.asarray(table.columns[table.schema.label.name], dtype=np.float64)


def _check_positive(name: str, value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"option 'method.{option}' must be >= 1 or none; got {value}")


# ------------------------------------------------------------------------------ Lasso


@dataclass(frozen=True)
class LassoConfig:
    alpha: float = 1e-3
    fit_intercept: bool = True
    max_iter: int = 1000
    tol: float = 1e-4
    positive: bool = False
    selection: Literal["cyclic", "random"] = "cyclic"
    ids_as_numbers: bool = False  # ERASE: Lasso on raw label-encoded ids, score |coef|
    max_rows: int | None = None  # subsample the training split (None: all rows, as released)


@register_selector("lasso")
class LassoSelector(FieldSelector):
    """``sklearn.linear_model.Lasso`` regressing the 0/1 label (as released)."""

    Config = LassoConfig
    family = "shallow"

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        from sklearn.linear_model import Lasso

        c = self.config
        _check_positive(self.name, c.max_rows, "max_rows")
        t = subsample(train, c.max_rows, self.seed)
        y = _label(t)
        model = Lasso(alpha=c.alpha, fit_intercept=c.fit_intercept, max_iter=c.max_iter, tol=c.tol,
                      positive=c.positive, selection=c.selection, random_state=self.seed)
        if c.ids_as_numbers:
            model.fit(code_matrix(t, self.fields_), y)
            return np.abs(model.coef_)
        x, owner = onehot_matrix(t, self.fields_)
        model.fit(x, y)
        contrib = x.multiply(model.coef_.reshape(1, -1)).tocsc()
        scores = np.zeros(len(self.fields_))
        for i in range(len(self.fields_)):
            term = np.asarray(contrib[:, owner == i].sum(axis=1)).ravel()
            scores[i] = term.std()
        return scores


# ------------------------------------------------------------------------------ trees


def _tree_input(sel: FieldSelector, t: Table, y: np.ndarray) -> np.ndarray:
    if sel.config.ids_as_numbers or getattr(sel.config, "categorical", "target") == "native":
        return code_matrix(t, sel.fields_)
    return target_encoded(t, sel.fields_, y, sel.seed)


@dataclass(frozen=True)
class GBDTConfig:
    learning_rate: float = 0.1
    n_estimators: int = 100
    subsample: float = 1.0
    min_samples_split: int = 2
    min_samples_leaf: int = 1
    min_weight_fraction_leaf: float = 0.0
    max_depth: int = 3
    n_iter_no_change: int | None = 3
    ids_as_numbers: bool = False  # ERASE: trees split on raw label-encoded ids
    max_rows: int | None = None


@register_selector("gbdt")
class GBDTSelector(FieldSelector):
    """``sklearn.ensemble.GradientBoostingClassifier``; impurity ``feature_importances_``."""

    Config = GBDTConfig
    family = "shallow"

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        from sklearn.ensemble import GradientBoostingClassifier

        c = self.config
        _check_positive(self.name, c.max_rows, "max_rows")
        t = subsample(train, c.max_rows, self.seed)
        y = _label(t)
        model = GradientBoostingClassifier(
            learning_rate=c.learning_rate, n_estimators=c.n_estimators, subsample=c.subsample,
            min_samples_split=c.min_samples_split, min_samples_leaf=c.min_samples_leaf,
            min_weight_fraction_leaf=c.min_weight_fraction_leaf, max_depth=c.max_depth,
            n_iter_no_change=c.n_iter_no_change, random_state=self.seed)
        model.fit(_tree_input(self, t, y), y)
        return model.feature_importances_


@dataclass(frozen=True)
class RFConfig:
    n_estimators: int = 10
    max_depth: int | None = None
    n_jobs: int = 1  # ERASE: 6; the result does not depend on it
    ids_as_numbers: bool = False
    max_rows: int | None = None


def _fit_rf(sel: FieldSelector, t: Table) -> tuple[Any, np.ndarray, np.ndarray]:
    from sklearn.ensemble import RandomForestClassifier

    c = sel.config
    y = _label(t)
    x = _tree_input(sel, t, y)
    model = RandomForestClassifier(n_estimators=c.n_estimators, max_depth=c.max_depth, n_jobs=c.n_jobs,
                                   random_state=sel.seed)
    return model.fit(x, y), x, y


@register_selector("rf")
class RFSelector(FieldSelector):
    """``sklearn.ensemble.RandomForestClassifier`` (10 trees, full depth); impurity importances."""

    Config = RFConfig
    family = "shallow"

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        _check_positive(self.name, self.config.max_rows, "max_rows")
        model, _, _ = _fit_rf(self, subsample(train, self.config.max_rows, self.seed))
        return model.feature_importances_


@dataclass(frozen=True)
class XGBConfig:
    n_estimators: int = 10
    max_depth: int | None = None  # None: xgboost's default (6)
    n_jobs: int = 1
    importance_type: Literal["gain", "weight", "cover", "total_gain", "total_cover"] = "gain"
    categorical: Literal["target", "native"] = "target"
    ids_as_numbers: bool = False
    max_rows: int | None = None


@register_selector("xgboost")
class XGBSelector(FieldSelector):
    """``xgboost.XGBClassifier`` (10 trees); gain importance (xgboost's default for trees)."""

    Config = XGBConfig
    family = "shallow"

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        from xgboost import XGBClassifier

        c = self.config
        _check_positive(self.name, c.max_rows, "max_rows")
        t = subsample(train, c.max_rows, self.seed)
        y = _label(t)
        x = _tree_input(self, t, y)
        kw = {}
        if not c.ids_as_numbers and c.categorical == "native":
            mask = sparse_mask(t, self.fields_)
            kw = {"enable_categorical": True, "feature_types": ["c" if m else "q" for m in mask],
                  "tree_method": "hist"}
        model = XGBClassifier(n_estimators=c.n_estimators, max_depth=c.max_depth, n_jobs=c.n_jobs,
                              importance_type=c.importance_type, random_state=self.seed, **kw)
        model.fit(x, y)
        return np.nan_to_num(model.feature_importances_, nan=0.0)


@dataclass(frozen=True)
class LGBMConfig:
    n_estimators: int = 100
    learning_rate: float = 0.1
    num_leaves: int = 31
    importance_type: Literal["gain", "split"] = "gain"
    n_jobs: int = 1
    categorical: Literal["target", "native"] = "target"
    ids_as_numbers: bool = False
    max_rows: int | None = None


@register_selector("lightgbm")
class LGBMSelector(FieldSelector):
    """``lightgbm.LGBMClassifier`` with native categorical features; gain importance (extra)."""

    Config = LGBMConfig
    family = "shallow"

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        from lightgbm import LGBMClassifier

        c = self.config
        _check_positive(self.name, c.max_rows, "max_rows")
        t = subsample(train, c.max_rows, self.seed)
        y = _label(t)
        x = _tree_input(self, t, y)
        native = c.categorical == "native" and not c.ids_as_numbers
        cats = [] if not native else [i for i, m in enumerate(sparse_mask(t, self.fields_)) if m]
        model = LGBMClassifier(n_estimators=c.n_estimators, learning_rate=c.learning_rate, num_leaves=c.num_leaves,
                               importance_type=c.importance_type, n_jobs=c.n_jobs, random_state=self.seed,
                               deterministic=True, verbose=-1)
        model.fit(x, y, categorical_feature=cats or "auto")
        return np.asarray(model.feature_importances_, dtype=np.float64)
