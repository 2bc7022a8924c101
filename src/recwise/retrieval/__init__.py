"""The retrieval core: retrievers, TREC runs, mined negatives and bi-encoder fine-tuning.

Shared by the retrieval (SyNeg), RAG and geolocalization task families; it sits beside
``models/`` in DESIGN.md's layers (it may use ``data``, ``metrics``, ``train`` and ``llm``: the
dense encoder is the LLM layer's, with its embedding cache). Collections are in
:mod:`recwise.data.retrieval`, metrics in :mod:`recwise.metrics.retrieval`.

- :class:`BM25Retriever` (bm25s) and :class:`DenseRetriever` (a sentence-transformers bi-encoder
  plus a :class:`FaissIndex`: exact IndexFlatIP, or IVF / HNSW) both return a :class:`Ranking` of
  corpus rows; :func:`write_trec` / :func:`read_trec` for run files.
- :func:`mine`, :func:`random_negatives`, :func:`false_negative_audit`: negatives from a ranking.
- :func:`finetune`: sentence-transformers' trainer with MultipleNegativesRankingLoss (or the cached variant).

Heavy libraries (bm25s, faiss, sentence-transformers, ranx) load on first use.
"""

from __future__ import annotations

from recwise.retrieval.bm25 import BM25Config, BM25Retriever
from recwise.retrieval.dense import (
    DenseConfig,
    DenseRetriever,
    FaissIndex,
    SentenceEncoder,
    TextEncoder,
    load_dense_encoder,
    local_sentence_transformer,
)
from recwise.retrieval.finetune import FinetuneConfig, Triple, finetune, training_dataset
from recwise.retrieval.negatives import false_negative_audit, mine, random_negatives
from recwise.retrieval.runs import Ranking, read_trec, write_trec

__all__ = [
    "BM25Config",
    "BM25Retriever",
    "DenseConfig",
    "DenseRetriever",
    "FaissIndex",
    "FinetuneConfig",
    "Ranking",
    "SentenceEncoder",
    "TextEncoder",
    "Triple",
    "false_negative_audit",
    "finetune",
    "load_dense_encoder",
    "local_sentence_transformer",
    "mine",
    "random_negatives",
    "read_trec",
    "training_dataset",
    "write_trec",
]
