"""Mined negatives and the false-negative audit.

A *mined* negative of query q is a document a retriever ranks highly for q that is not judged
relevant to q. :func:`mine` takes a :class:`~recwise.retrieval.runs.Ranking` (BM25 or dense) and
keeps, per query, the rows whose rank (1-based) lies in a window ``[lo, hi]`` and that are not
judged positives. :func:`false_negative_audit` is the measurement SyNeg's argument rests on: of
the documents in a rank window, what share *is* judged relevant (and so would be trained on as a
negative if the judgments were incomplete, as they are in large collections)?

:func:`random_negatives` draws uniformly from the corpus minus the judged positives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recwise.errors import ConfigError
from recwise.retrieval.runs import Ranking

__all__ = ["false_negative_audit", "mine", "random_negatives"]


def _check_window(window: tuple[int, int]) -> None:
    lo, hi = window
    if not (1 <= lo <= hi):
        raise ConfigError(f"rank window must satisfy 1 <= lo <= hi; got {window}")


def mine(ranking: Ranking, query_rows: Sequence[int] | np.ndarray, positives: Mapping[int, Mapping[int, int]],
         window: tuple[int, int] = (10, 100)) -> dict[int, np.ndarray]:
    """``{query row: candidate doc rows}`` ranked in ``window`` (1-based, inclusive) minus judged positives.

    ``ranking`` row ``i`` belongs to ``query_rows[i]``; ``positives``: query row -> {doc row: gain}.
    """
    _check_window(window)
    lo, hi = window
    out: dict[int, np.ndarray] = {}
    for i, q in enumerate(query_rows):
        ranked = ranking.rows[i, lo - 1: hi]
        pos = positives.get(int(q), {})
        out[int(q)] = np.asarray([r for r in ranked.tolist() if r >= 0 and r not in pos], dtype=np.int64)
    return out


def false_negative_audit(ranking: Ranking, query_rows: Sequence[int] | np.ndarray,
                         positives: Mapping[int, Mapping[int, int]],
                         windows: Sequence[tuple[int, int]]) -> list[dict[str, float]]:
    """Per rank window: documents there, how many are judged relevant, and the share.

    The share is what a miner that ignored the judgments would train on as false negatives.
    """
    rows = []
    for window in windows:
        _check_window(window)
        lo, hi = window
        seen = relevant = 0
        for i, q in enumerate(query_rows):
            pos = positives.get(int(q), {})
            ranked = [r for r in ranking.rows[i, lo - 1: hi].tolist() if r >= 0]
            seen += len(ranked)
            relevant += sum(r in pos for r in ranked)
        rows.append({"lo": lo, "hi": hi, "documents": seen, "relevant": relevant,
                     "share": relevant / seen if seen else float("nan")})
    return rows


def random_negatives(n_docs: int, query_rows: Sequence[int] | np.ndarray, positives: Mapping[int, Mapping[int, int]],
                     per_query: int, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """``per_query`` uniform corpus rows per query, none a judged positive (fewer when the corpus is tiny)."""
    out: dict[int, np.ndarray] = {}
    for q in query_rows:
        pos = positives.get(int(q), {})
        pool = n_docs - len(pos)
        want = min(per_query, pool)
        picked: list[int] = []
        while len(picked) < want:
            r = int(rng.integers(n_docs))
            if r not in pos and r not in picked:
                picked.append(r)
        out[int(q)] = np.asarray(picked, dtype=np.int64)
    return out
