"""Fixtures for the sequential task: planted sequences and the real MovieLens-100K interactions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recwise.data.sequence import Sequences, build_sequences


def planted_sequences(n_users: int = 200, n_items: int = 30, length: int = 12, seed: int = 0) -> Sequences:
    """Each user walks a fixed cycle of items (item i is followed by item (i+1) mod n), so the next
    item is fully predictable from the last one."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, n_items, n_users)
    items = (start[:, None] + np.arange(length)[None, :]) % n_items
    user = np.repeat(np.arange(n_users), length)
    time = np.tile(np.arange(length), n_users).astype(float)
    return build_sequences(user, items.ravel(), time)


@pytest.fixture(scope="session")
def planted() -> Sequences:
    return planted_sequences()


@pytest.fixture(scope="session")
def ml100k_seq(tmp_path_factory: pytest.TempPathFactory) -> Sequences:
    from recwise.data.seq_datasets import default_raw_dir, load_sequences

    raw = Path(os.environ.get("RECWISE_ML100K", default_raw_dir("ml-100k")))
    if not raw.exists():
        pytest.skip(f"MovieLens-100K raw files not found in {raw}")
    seqs, _ = load_sequences("ml-100k", raw, root=tmp_path_factory.mktemp("rwhome"))
    return seqs


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)
