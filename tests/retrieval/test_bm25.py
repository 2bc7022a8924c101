"""BM25 through bm25s on a corpus with planted matches."""

from __future__ import annotations

import pytest

from recwise.errors import ConfigError, DataError
from recwise.retrieval import BM25Config, BM25Retriever

CORPUS = ["propeller slipstream over a wing at angle of attack", "heat conduction in composite slabs",
          "boundary layer transition on a flat plate", "hypersonic flow over a blunt body with dissociation"]


def test_each_query_finds_its_planted_document() -> None:
    bm25 = BM25Retriever().index(CORPUS)
    ranking = bm25.search(["slipstream wing", "composite slab heat", "blunt body hypersonic"], k=10)
    assert ranking.rows.shape == (3, 4)  # k capped at the corpus size
    assert ranking.rows[:, 0].tolist() == [0, 1, 3]
    assert (ranking.scores[:, 0] > ranking.scores[:, 1]).all()


def test_stopwords_matter() -> None:
    with_stop = BM25Retriever(BM25Config(stopwords="en")).index(["the the the", "wing"]).search(["the wing"], k=2)
    without = BM25Retriever(BM25Config(stopwords="none")).index(["the the the", "wing"]).search(["the wing"], k=2)
    assert with_stop.scores[0, 1] == 0.0 and without.scores[0, 1] > 0.0


@pytest.mark.parametrize(("kwargs", "message"), [({"k1": -1.0}, "bm25.k1"), ({"b": 1.5}, "bm25.b")])
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BM25Config(**kwargs)


def test_empty_corpus_and_unindexed() -> None:
    with pytest.raises(DataError, match="empty corpus"):
        BM25Retriever().index([])
    with pytest.raises(ConfigError, match="not indexed"):
        BM25Retriever().search(["x"])
