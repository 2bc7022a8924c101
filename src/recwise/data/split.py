"""Splits made once per dataset from a split seed; they never depend on the training seed."""

from __future__ import annotations

import numpy as np

from recwise.errors import ConfigError

__all__ = ["random_split"]


def random_split(n: int, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 seed: int = 2022) -> dict[str, np.ndarray]:
    """Random train/val/test row indices (sorted within each part), as Scenario-Wise Rec's 8:1:1.

    Unlike the original (``torch.utils.data.random_split`` under the training seed) the split
    comes from its own seed, so changing the training seed keeps the same test set.
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"option 'split_ratio' must be three non-negative numbers summing to 1; got {ratios}")
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(ratios[0] * n))
    n_val = int(round(ratios[1] * n))
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train : n_train + n_val]),
        "test": np.sort(perm[n_train + n_val :]),
    }
