"""Shared setup of fs-deep's selector tests: the planted-truth data and a short training config."""

from __future__ import annotations

from functools import lru_cache

from recwise.data.synthetic import PlantedCTR, planted_ctr
from recwise.train import TrainConfig

# ERASE's optimiser (Adam 1e-3, no weight decay, patience 3) with a smaller batch and epoch cap for CPU tests.
FAST = TrainConfig(epochs=5, batch_size=512, eval_batch_size=16384, lr=1e-3, weight_decay=0.0, patience=3, seed=0,
                   device="cpu")


@lru_cache(maxsize=4)
def planted(seed: int = 0, n: int = 20000) -> PlantedCTR:
    """4 signal fields (s0-s2, d0), a noisy copy c0 of s0, 5 noise fields (n0-n3 with 5/50/500/5 values, dn0)."""
    return planted_ctr(n, seed=seed)
