"""BM25 through bm25s (Lù, 2024: sparse eager scoring with scipy; https://github.com/xhluca/bm25s).

Tokenisation is bm25s's: lower-cased ``\\w\\w+`` tokens, English stop words removed, no stemming
(PyStemmer would be one more compiled dependency). ``k1 = 1.5``, ``b = 0.75`` and Lucene's BM25
variant are bm25s's defaults.

Examples
--------
>>> bm25 = BM25Retriever().index(["a wing in a slipstream", "flat plate flow"])   # doctest: +SKIP
>>> bm25.search(["slipstream wing"], k=1).rows.tolist()                          # doctest: +SKIP
[[0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from recwise.errors import ConfigError, DataError, DependencyError
from recwise.retrieval.runs import Ranking

__all__ = ["BM25Config", "BM25Retriever"]


@dataclass(frozen=True)
class BM25Config:
    """BM25 parameters.

    Parameters
    ----------
    k1 : float, default 1.5
        Term-frequency saturation, >= 0.
    b : float, default 0.75
        Length normalisation, in [0, 1].
    method : {"lucene", "robertson", "atire", "bm25l", "bm25+"}, default "lucene"
    stopwords : {"en", "none"}, default "en"
    """

    k1: float = 1.5
    b: float = 0.75
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"
    stopwords: Literal["en", "none"] = "en"

    def __post_init__(self) -> None:
        if not self.k1 >= 0:
            raise ConfigError(f"option 'bm25.k1' must be >= 0; got {self.k1}")
        if not 0 <= self.b <= 1:
            raise ConfigError(f"option 'bm25.b' must be in [0, 1]; got {self.b}")


def _bm25s() -> Any:
    try:
        import bm25s  # type: ignore[import-untyped]
    except ImportError:
        raise DependencyError("BM25 needs bm25s: pip install 'recwise[retrieval]'") from None
    return bm25s


class BM25Retriever:
    """A BM25 index over a list of texts; ``search`` returns corpus rows.

    Parameters
    ----------
    config : BM25Config, optional
    """

    def __init__(self, config: BM25Config | None = None) -> None:
        self.config = config or BM25Config()
        self._model: Any = None
        self.n_docs_ = 0

    def _tokenize(self, texts: Sequence[str]) -> Any:
        stop = "english" if self.config.stopwords == "en" else None
        return _bm25s().tokenize(list(texts), stopwords=stop, show_progress=False)

    def index(self, texts: Sequence[str]) -> BM25Retriever:
        """Index ``texts`` (row ``i`` is ``texts[i]``); returns self."""
        if not texts:
            raise DataError("cannot index an empty corpus")
        bm25s = _bm25s()
        self._model = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
        self._model.index(self._tokenize(texts), show_progress=False)
        self.n_docs_ = len(texts)
        return self

    def search(self, queries: Sequence[str], k: int = 100) -> Ranking:
        """Top-``k`` rows per query (``k`` is capped at the corpus size); rows with score 0 are still ranked."""
        if self._model is None:
            raise ConfigError("BM25Retriever is not indexed yet; call index(texts) first")
        k = min(k, self.n_docs_)
        tokens = self._tokenize(queries)
        rows, scores = self._model.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return Ranking(np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float32))
