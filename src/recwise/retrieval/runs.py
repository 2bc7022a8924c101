"""Ranked lists: :class:`Ranking` (row indices and scores, one row per query) and TREC run files.

A retriever returns a :class:`Ranking` over corpus *rows*; :meth:`Ranking.to_run` names them with
the collection's ids. :func:`write_trec` writes the standard six-column run file
(``qid Q0 docid rank score tag``) that ``trec_eval``, ranx and ir-measures read; :func:`read_trec`
reads it back (a malformed line is a DataError naming the file and line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recwise.errors import DataError
from recwise.results import atomic_write_text

__all__ = ["Ranking", "read_trec", "write_trec"]


@dataclass(frozen=True)
class Ranking:
    """Top-k corpus rows per query: ``rows`` int64 ``(n_queries, k)`` best first, ``scores`` float32 same shape.

    A row of ``-1`` pads a query with fewer than k hits (its score is ``-inf``).
    """

    rows: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.rows.shape != self.scores.shape or self.rows.ndim != 2:
            raise ValueError(f"rows {self.rows.shape} and scores {self.scores.shape} must be equal 2-d shapes")

    def to_run(self, query_ids: Sequence[str], doc_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """``{query id: {doc id: score}}``; ``query_ids[i]`` names row ``i``."""
        if len(query_ids) != self.rows.shape[0]:
            raise ValueError(f"{len(query_ids)} query ids for {self.rows.shape[0]} ranked rows")
        out: dict[str, dict[str, float]] = {}
        for qid, rows, scores in zip(query_ids, self.rows.tolist(), self.scores.tolist()):
            out[qid] = {doc_ids[r]: float(s) for r, s in zip(rows, scores) if r >= 0}
        return out


def write_trec(path: Path, run: Mapping[str, Mapping[str, float]], tag: str) -> None:
    """Write ``run`` as a TREC run file (queries in the given order, documents by descending score), atomically."""
    lines = []
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [f"{qid} Q0 {d} {rank} {s:.6f} {tag}" for rank, (d, s) in enumerate(ranked, 1)]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_trec(path: Path) -> dict[str, dict[str, float]]:
    """Read a six-column TREC run file into ``{query id: {doc id: score}}``."""
    out: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise DataError(f"{path}:{lineno}: a TREC run line has 6 columns (qid Q0 docid rank score tag); "
                                f"got {len(parts)}")
            try:
                out.setdefault(parts[0], {})[parts[2]] = float(parts[4])
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {parts[4]!r} is not a number") from None
    return out
