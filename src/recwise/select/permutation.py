"""Permutation importance, shallow and deep.

* ``permutation`` (ERASE's "Permutation"): fit the same 10-tree random forest as ``rf`` and
  score each field by ``sklearn.inspection.permutation_importance`` (mean drop of ``scoring``
  over ``n_repeats`` shuffles of that column). ERASE computes it on the *training* split the
  forest memorised (full-depth trees) with accuracy; here it runs on the held-out validation
  split (``on=valid``, falls back to train when no validation table is given) with row
  subsampling (``max_samples``). ``on=train`` restores the released behaviour. Ids are
  target-encoded as for ``rf`` (encoder fitted on train, applied to the held-out rows);
  ``ids_as_numbers=true`` uses raw codes as released.
* ``permutation_deep`` (ours, not in ERASE): train the backbone (``backbone=...``) with early
  stopping on validation AUC, then permute one field's column at a time in the validation split
  and record the mean drop of validation AUC (or the rise of logloss) over ``n_repeats``
  shuffles; predictions run in large batches, one pass per field and repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from recwise.data.schema import FieldKind
from recwise.data.table import Table
from recwise.errors import ConfigError
from recwise.metrics import auc, logloss
from recwise.select.base import FieldSelector, register_selector
from recwise.select.shallow import _check_positive, _label, code_matrix, sparse_mask, subsample
from recwise.train import predict

__all__ = ["PermutationDeepSelector", "PermutationSelector"]


@dataclass(frozen=True)
class PermutationConfig:
    n_estimators: int = 10
    max_depth: int | None = None
    n_repeats: int = 5
    scoring: str = "accuracy"  # sklearn's default for a classifier, as released; "roc_auc" also works
    on: Literal["valid", "train"] = "valid"  # ERASE: train
    max_samples: int | None = 20000  # rows drawn per repeat (None: all)
    n_jobs: int = 1
    ids_as_numbers: bool = False


def _encode(sel: FieldSelector, train: Table, other: Table | None) -> tuple[np.ndarray, np.ndarray | None]:
    fields = sel.fields_
    x_tr = code_matrix(train, fields)
    x_ot = code_matrix(other, fields) if other is not None else None
    if sel.config.ids_as_numbers:
        return x_tr, x_ot
    mask = sparse_mask(train, fields)
    if mask.any():
        from sklearn.model_selection import StratifiedKFold
        from sklearn.preprocessing import TargetEncoder

        enc = TargetEncoder(target_type="binary", cv=StratifiedKFold(5, shuffle=True, random_state=sel.seed))
        codes = x_tr[:, mask].astype(np.int64)
        x_tr[:, mask] = enc.fit_transform(codes, _label(train))
        if x_ot is not None:
            x_ot[:, mask] = enc.transform(x_ot[:, mask].astype(np.int64))
    return x_tr, x_ot


@register_selector("permutation")
class PermutationSelector(FieldSelector):
    """Random forest + ``sklearn.inspection.permutation_importance`` on a held-out split."""

    Config = PermutationConfig
    family = "permutation"

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.inspection import permutation_importance

        c = self.config
        _check_positive(self.name, c.max_samples, "max_samples")
        _check_positive(self.name, c.n_repeats, "n_repeats")
        held = valid if (c.on == "valid" and valid is not None) else None
        x_tr, x_ho = _encode(self, train, held)
        y_tr = _label(train)
        model = RandomForestClassifier(n_estimators=c.n_estimators, max_depth=c.max_depth, n_jobs=c.n_jobs,
                                       random_state=self.seed).fit(x_tr, y_tr)
        x, y = (x_ho, _label(held)) if held is not None else (x_tr, y_tr)
        max_samples = 1.0 if c.max_samples is None else min(c.max_samples, len(y))
        try:
            result = permutation_importance(model, x, y, scoring=c.scoring, n_repeats=c.n_repeats,
                                            max_samples=max_samples, n_jobs=c.n_jobs, random_state=self.seed)
        except ValueError as exc:
            if "scoring" in str(exc) or "scorer" in str(exc):
                raise ConfigError(f"option 'method.scoring': {str(exc).splitlines()[0]}") from None
            raise
        return result.importances_mean


@dataclass(frozen=True)
class PermutationDeepConfig:
    n_repeats: int = 3
    metric: Literal["auc", "logloss"] = "auc"
    max_samples: int | None = None  # validation rows used (None: all)


@register_selector("permutation_deep")
class PermutationDeepSelector(FieldSelector):
    """Field-level permutation importance of a trained backbone on the validation split."""

    Config = PermutationDeepConfig
    family = "permutation"
    uses_backbone = True

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        c = self.config
        _check_positive(self.name, c.n_repeats, "n_repeats")
        _check_positive(self.name, c.max_samples, "max_samples")
        model = self.trained_backbone(train, valid)
        assert valid is not None
        held = subsample(valid, c.max_samples, self.seed)
        data = held.tensors()
        y = data["label"].numpy()
        bs = self.train_config.eval_batch_size
        measure = (lambda p: auc(y, p)) if c.metric == "auc" else (lambda p: -logloss(y, 1.0 / (1.0 + np.exp(-p))))
        base = measure(predict(model, data, bs))
        rng = np.random.default_rng(self.seed)
        n_sparse = len(held.schema.sparse)
        scores = np.zeros(len(self.fields_))
        for i, f in enumerate(self.fields_):
            key, col = ("sparse", i) if held.schema[f].kind == FieldKind.SPARSE else ("dense", i - n_sparse)
            original = data[key][:, col].clone()
            drops = []
            for _ in range(c.n_repeats):
                data[key][:, col] = original[torch.from_numpy(rng.permutation(len(y)))]
                drops.append(base - measure(predict(model, data, bs)))
            data[key][:, col] = original
            scores[i] = float(np.mean(drops))
        self.model_ = model
        return scores
