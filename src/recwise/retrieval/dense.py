"""Dense retrieval: a bi-encoder (sentence-transformers) and exact or approximate inner-product search (faiss).

- :class:`DenseConfig` picks the encoder: ``minilm`` (all-MiniLM-L6-v2 from the offline wheel, via
  the LLM layer's encoder and its disk cache, so a second run encodes nothing), any local
  sentence-transformers folder, or the LLM layer's HTTP encoder (``backend="http"``: any
  OpenAI-compatible ``/v1/embeddings`` server).
- :class:`SentenceEncoder` wraps an in-memory ``SentenceTransformer`` (a model being fine-tuned
  has no stable fingerprint, so it is not cached).
- :class:`FaissIndex` searches unit vectors by inner product (= cosine): ``flat`` is exact
  (IndexFlatIP); ``ivf`` (IndexIVFFlat, ``nlist`` cells, ``nprobe`` visited) and ``hnsw``
  (IndexHNSWFlat, ``hnsw_m`` links) are for corpora of millions.
- :class:`DenseRetriever` = an encoder + a FaissIndex over a corpus.

Examples
--------
>>> enc = load_dense_encoder(DenseConfig())                                  # doctest: +SKIP
>>> dr = DenseRetriever(enc).index(["a wing in a slipstream", "flat plate flow"])   # doctest: +SKIP
>>> dr.search(["propeller slipstream"], k=1).rows.tolist()                   # doctest: +SKIP
[[0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from recwise.errors import ConfigError, DataError, DependencyError
from recwise.retrieval.runs import Ranking

__all__ = ["DenseConfig", "DenseRetriever", "FaissIndex", "SentenceEncoder", "TextEncoder", "load_dense_encoder",
           "local_sentence_transformer"]


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that turns texts into an ``(n, dim)`` float32 array of unit rows."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class DenseConfig:
    """The bi-encoder and its index.

    Parameters
    ----------
    model : str, default "minilm"
        ``minilm`` or a local sentence-transformers folder (local backend); the server's model
        name (http backend).
    backend : {"local", "http"}, default "local"
    base_url : str or None
        http backend: the server (default ``$RECWISE_LLM_BASE_URL``).
    batch_size : int, default 64
    index : {"flat", "ivf", "hnsw"}, default "flat"
    nlist : int, default 1024
        ivf: number of cells (capped at the corpus size / 39, faiss's minimum training points per cell).
    nprobe : int, default 16
        ivf: cells visited per query.
    hnsw_m : int, default 32
        hnsw: links per node.
    cache : bool, default True
        Cache embeddings in the LLM layer's disk cache (local ``minilm`` / folder and http).
    """

    model: str = "minilm"
    backend: Literal["local", "http"] = "local"
    base_url: str | None = None
    batch_size: int = 64
    index: Literal["flat", "ivf", "hnsw"] = "flat"
    nlist: int = 1024
    nprobe: int = 16
    hnsw_m: int = 32
    cache: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "nlist", "nprobe", "hnsw_m"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"option 'dense.{name}' must be an int >= 1; got {v!r}")


def load_dense_encoder(config: DenseConfig, *, show_progress: bool = False) -> TextEncoder:
    """The LLM layer's :class:`~recwise.llm.Encoder` for ``config`` (cached embeddings)."""
    from recwise.llm import load_encoder

    return load_encoder(backend=config.backend, model=config.model if config.model != "minilm" or
                        config.backend == "local" else None, base_url=config.base_url,
                        batch_size=config.batch_size, cache=config.cache, show_progress=show_progress)


def local_sentence_transformer(model: str = "minilm") -> Any:
    """A fresh, trainable ``SentenceTransformer`` for ``model`` (``minilm`` or a folder).

    The LLM layer keeps one shared instance per model for encoding; fine-tuning must not change
    that one, so this returns a deep copy.
    """
    import copy

    from recwise.llm import LocalEncoderBackend

    return copy.deepcopy(LocalEncoderBackend(model, device="cpu").model)


class SentenceEncoder:
    """Encode with an in-memory ``SentenceTransformer`` (no cache); rows are L2-normalised float32.

    ``precision="bf16"`` encodes under bfloat16 autocast on the model's device (several times
    faster on CPUs with AMX; cosine to the float32 vectors about 0.99999 for MiniLM).
    """

    def __init__(self, model: Any, *, batch_size: int = 64, precision: Literal["fp32", "bf16"] = "fp32") -> None:
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16'; got {precision!r}")
        self.model = model
        self.batch_size = batch_size
        self.precision = precision

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                     show_progress_bar=False, normalize_embeddings=True)
        return np.asarray(vecs, dtype=np.float32)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise DependencyError("dense search needs faiss: pip install 'recwise[retrieval]'") from None
    return faiss


class FaissIndex:
    """Inner-product search over unit vectors; see the module docstring for the kinds."""

    def __init__(self, kind: Literal["flat", "ivf", "hnsw"] = "flat", *, nlist: int = 1024, nprobe: int = 16,
                 hnsw_m: int = 32) -> None:
        if kind not in ("flat", "ivf", "hnsw"):
            raise ConfigError(f"option 'dense.index' must be 'flat', 'ivf' or 'hnsw'; got {kind!r}")
        self.kind = kind
        self.nlist, self.nprobe, self.hnsw_m = nlist, nprobe, hnsw_m
        self._index: Any = None
        self.size_ = 0

    def add(self, vectors: np.ndarray) -> FaissIndex:
        faiss = _faiss()
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise DataError(f"cannot index {x.shape} vectors; expected a non-empty (n, dim) array")
        dim = x.shape[1]
        if self.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            nlist = max(1, min(self.nlist, x.shape[0] // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(x)
            index.nprobe = min(self.nprobe, nlist)
        index.add(x)
        self._index = index
        self.size_ = x.shape[0]
        return self

    def search(self, queries: np.ndarray, k: int) -> Ranking:
        if self._index is None:
            raise ConfigError("FaissIndex is empty; call add(vectors) first")
        k = min(k, self.size_)
        scores, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        scores = np.where(rows < 0, -np.inf, scores)
        return Ranking(rows.astype(np.int64), scores.astype(np.float32))


class DenseRetriever:
    """A bi-encoder over a corpus: ``index(texts)`` encodes and indexes them, ``search(queries, k)`` ranks rows.

    Parameters
    ----------
    encoder : TextEncoder
        :func:`load_dense_encoder` (cached), :class:`SentenceEncoder` (a model in memory) or any
        object with ``encode(texts)``.
    index : FaissIndex, optional
        Default: exact search (``flat``).
    """

    def __init__(self, encoder: TextEncoder, index: FaissIndex | None = None) -> None:
        self.encoder = encoder
        self.faiss_index = index or FaissIndex("flat")
        self.doc_vectors_: np.ndarray | None = None

    def index(self, texts: Sequence[str]) -> DenseRetriever:
        if not texts:
            raise DataError("cannot index an empty corpus")
        self.doc_vectors_ = self.encoder.encode(list(texts))
        self.faiss_index.add(self.doc_vectors_)
        return self

    def search(self, queries: Sequence[str], k: int = 100) -> Ranking:
        return self.faiss_index.search(self.encoder.encode(list(queries)), k)
