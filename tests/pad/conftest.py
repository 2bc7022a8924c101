"""Fixtures for PAD: small planted sequences with item texts that carry the structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.data.sequence import Sequences, build_sequences


def planted_with_text(n_users: int = 150, n_items: int = 40, length: int = 14,
                      seed: int = 0) -> tuple[Sequences, list[str]]:
    """Users walk a cycle (item i -> i+1); every item's text names its cycle position, so text alone
    predicts the next item as well as ids do; item popularity is skewed (starts are Zipf-like)."""
    rng = np.random.default_rng(seed)
    start = np.minimum(rng.zipf(1.6, n_users) - 1, n_items - 1)
    items = (start[:, None] + np.arange(length)[None, :]) % n_items
    user = np.repeat(np.arange(n_users), length)
    time = np.tile(np.arange(length), n_users).astype(float)
    seqs = build_sequences(user, items.ravel(), time)
    texts = [f"step {int(tok)} of the cycle genre{int(tok) % 5}" for tok in seqs.item_tokens[1:]]
    return seqs, texts


@pytest.fixture(scope="session")
def planted_text() -> tuple[Sequences, list[str]]:
    return planted_with_text()


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)
