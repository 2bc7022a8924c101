"""Metric functions (numpy in, float out) and paired significance tests."""

from recwise.metrics.classification import auc, logloss
from recwise.metrics.significance import (
                                         BootstrapTest,
                                         PairedTest,
                                         paired_bootstrap_auc,
                                         paired_bootstrap_mean,
                                         paired_seed_test,
)

__all__ = ["BootstrapTest", "PairedTest", "auc", "logloss", "paired_bootstrap_auc", "paired_bootstrap_mean",
           "paired_seed_test"]
