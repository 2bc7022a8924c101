"""faiss search against numpy's exact answer, and the dense retriever with a planted encoder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from recwise.errors import ConfigError
from recwise.retrieval import DenseConfig, DenseRetriever, FaissIndex


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_index_is_exact() -> None:
    rng = np.random.default_rng(0)
    docs, queries = _unit(rng, 500, 16), _unit(rng, 20, 16)
    got = FaissIndex("flat").add(docs).search(queries, 10)
    want = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    assert (got.rows == want).all()
    assert np.allclose(got.scores, np.take_along_axis(queries @ docs.T, want, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_find_most_true_neighbours(kind: str) -> None:
    rng = np.random.default_rng(1)
    docs, queries = _unit(rng, 2000, 16), _unit(rng, 20, 16)
    got = FaissIndex(kind, nlist=16, nprobe=8).add(docs).search(queries, 10)
    want = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got.rows.tolist(), want.tolist())])
    assert recall > 0.6


class WordEncoder:
    """One dimension per vocabulary word: a planted encoder (cosine = word overlap)."""

    vocab = ("wing", "heat", "plate", "shock")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        x = np.array([[t.count(w) for w in self.vocab] for t in texts], dtype=np.float32) + 1e-3
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_dense_retriever_ranks_by_the_encoder() -> None:
    dr = DenseRetriever(WordEncoder()).index(["wing wing", "heat", "plate plate shock", "shock"])
    assert dr.search(["heat?", "shock plate"], k=2).rows[:, 0].tolist() == [1, 2]


@pytest.mark.parametrize(("kwargs", "message"),
                         [({"batch_size": 0}, "dense.batch_size"), ({"nlist": 0}, "dense.nlist")])
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DenseConfig(**kwargs)
