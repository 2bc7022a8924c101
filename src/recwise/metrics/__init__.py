"""Metric functions (numpy in, float out)."""

from recwise.metrics.classification import auc, logloss

__all__ = ["auc", "logloss"]
