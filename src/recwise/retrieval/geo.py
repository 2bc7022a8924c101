"""A geotagged database for retrieval-augmented geolocalization (G3's ``IndexSearch.py``).

Each gallery entry's vector (G3: [CLIP, image->text, image->GPS], each unit) sits in a
:class:`~recwise.retrieval.FaissIndex` (exact inner product, IndexFlatIP as released). A query
gets its ``k`` most similar entries (:meth:`GeoDatabase.search`) and, as released, its ``k`` least
similar ones through the same index searched with the negated query (:meth:`GeoDatabase.reverse`:
the top of ``<-q, x>`` is the bottom of ``<q, x>``). Their coordinates become the RAG prompts'
references.

Example::

    db = GeoDatabase(vectors, latlon)
    near, far = db.search(queries, 15), db.reverse(queries, 15)
    db.latlon[near.rows[0]]        # (15, 2) degrees of query 0's most similar entries
"""

from __future__ import annotations

import numpy as np

from recwise.errors import DataError
from recwise.retrieval.dense import FaissIndex
from recwise.retrieval.runs import Ranking

__all__ = ["GeoDatabase"]


class GeoDatabase:
    """Vectors (N, d) with their coordinates (N, 2), searchable both ways."""

    def __init__(self, vectors: np.ndarray, latlon: np.ndarray, index: FaissIndex | None = None) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        latlon = np.asarray(latlon, dtype=np.float64)
        if vectors.ndim != 2 or latlon.shape != (len(vectors), 2):
            raise DataError(f"a geo database needs (N, d) vectors and (N, 2) coordinates; got {vectors.shape} "
                            f"and {latlon.shape}")
        self.latlon = latlon
        self.index = (index or FaissIndex("flat")).add(vectors)

    def __len__(self) -> int:
        return len(self.latlon)

    def search(self, queries: np.ndarray, k: int) -> Ranking:
        """The ``k`` most similar entries per query (highest inner product first)."""
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def reverse(self, queries: np.ndarray, k: int) -> Ranking:
        """The ``k`` least similar entries per query (lowest inner product first); scores are ``<q, x>``."""
        found = self.index.search(-np.ascontiguousarray(queries, dtype=np.float32), k)
        return Ranking(found.rows, -found.scores)
