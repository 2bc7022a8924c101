"""Binary-classification metrics: ROC AUC and log loss, through scikit-learn, in float64.

Scores are cast to float64 before scoring, so the sums behind a metric do not depend on the
dtype a model happens to output (a float32 -> float64 cast keeps every tie and every order).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

__all__ = ["auc", "logloss"]


def auc(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """ROC AUC; NaN when only one class is present (e.g. a tiny scenario)."""
    y_true = np.asarray(y_true)
    if y_true.size == 0 or np.unique(y_true).size < 2:
        return float("nan")
    return float(roc_auc_score(y_true, np.asarray(y_prob, dtype=np.float64)))


def logloss(y_true: np.ndarray, y_prob: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities clipped to [eps, 1 - eps]."""
    y_true = np.asarray(y_true, dtype=np.float64)
    if y_true.size == 0:
        return float("nan")
    p = np.clip(np.asarray(y_prob, dtype=np.float64), eps, 1 - eps)
    return float(log_loss(y_true, p, labels=[0, 1]))
