"""Retrieval-augmented generation pieces and RADIO's label construction (Jia et al., ACL Findings 2025).

RADIO (arXiv 2412.08519; code Applied-Machine-Learning-Lab/RADIO) aligns a reranker with what the
generator needs: an LLM writes a *rationale* for each training question from the question and its
gold answer; the retriever's candidates are re-ranked by their similarity to
``question. answers. rationale``; that order is fused with the retriever's by min-max normalised
scores (0.5 / 0.5); and the reranker is fine-tuned on groups drawn from the fused order by the
"shift" sampler. This module holds those steps as functions over :class:`~recwise.retrieval.Ranking`
rows; the stages, their files and resume live in the ``rag`` task.

- :func:`rationale_prompt`, :func:`answer_prompt`, :func:`clean_answer`: the released prompts
  (``llm_generation.py`` and FlashRAG's generator prompt used by ``run_rag.py``).
- :func:`similarity_ranking`: candidates re-ranked by cosine to a text (the rationale step).
- :func:`minmax` and :func:`fuse`: ``score_cache_to_dataset.py``'s fusion, with documents matched by
  corpus row rather than by text equality.
- :func:`shift_group` and :data:`SAMPLERS`: the group sampler and its released variants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recwise.errors import ConfigError, DataError
from recwise.retrieval.runs import Ranking

__all__ = ["SAMPLERS", "SampledGroup", "answer_prompt", "clean_answer", "fuse", "minmax", "rationale_prompt",
           "shift_group", "similarity_ranking"]

SAMPLERS: dict[str, tuple[int, ...]] = {
    # 0-based fused ranks of the negatives; the positive is rank 0 (score_cache_to_dataset.py)
    "shift": (3, 4, 6, 9, 13, 18),
    "shift_all_neg": tuple(range(3, 20)),
}

RATIONALE_SYSTEM = ("You are a professional QA assistant. Given a question and the ground truth answer, you can "
                    "output the rationale why the ground truth answer is correct.")
ANSWER_SYSTEM = ("Answer the question based on the given documents. Only give me the answer and do not output any "
                 "other words.")
CHOICE_SYSTEM = ("Answer the question based on the given documents. Only give me the letter of the correct option "
                 "(A, B, C or D) and do not output any other words.")


def rationale_prompt(question: str, answers: Sequence[str]) -> list[dict[str, str]]:
    """RADIO's rationale prompt: system turn, then three user turns (question, answer, ``Rationale:``).

    The released code writes the answer list with Python's ``str(list)``; here the answers are joined
    by `` / ``.
    """
    if not answers:
        raise DataError(f"question {question!r} has no gold answer: a rationale needs one")
    return [{"role": "system", "content": RATIONALE_SYSTEM},
            {"role": "user", "content": f"Question: {question}"},
            {"role": "user", "content": "Answer: " + " / ".join(answers)},
            {"role": "user", "content": "Rationale: "}]


def answer_prompt(question: str, documents: Sequence[str], choices: Sequence[str] = ()) -> list[dict[str, str]]:
    """The generator's prompt: the documents, then the question (and its lettered options)."""
    docs = "\n".join(f"Doc {i + 1}: {d}" for i, d in enumerate(documents))
    q = question
    if choices:
        q += "\n" + "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(choices))
    return [{"role": "system", "content": CHOICE_SYSTEM if choices else ANSWER_SYSTEM},
            {"role": "user", "content": f"The following are given documents.\n\n{docs}\n\nQuestion: {q}\nAnswer:"}]


def clean_answer(text: str) -> str:
    """The first non-empty line of a generated answer, without an ``Answer:`` prefix."""
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            low = line.lower()
            for prefix in ("answer:", "the answer is", "a:"):
                if low.startswith(prefix):
                    line = line[len(prefix):].strip().lstrip(":").strip()
                    break
            return line
    return ""


def similarity_ranking(candidates: Ranking, text_vectors: np.ndarray, doc_vectors: np.ndarray) -> Ranking:
    """Each query's candidate rows re-ordered by cosine between its text vector and the documents' (unit) vectors.

    ``text_vectors``: ``(n_queries, dim)`` unit rows; ``doc_vectors``: ``(n_docs, dim)`` unit rows.
    """
    if text_vectors.shape[0] != candidates.rows.shape[0]:
        raise ValueError(f"{text_vectors.shape[0]} text vectors for {candidates.rows.shape[0]} candidate lists")
    rows = candidates.rows
    safe = np.where(rows >= 0, rows, 0)
    sims = np.einsum("qd,qkd->qk", text_vectors, doc_vectors[safe]).astype(np.float32)
    sims = np.where(rows >= 0, sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")
    return Ranking(np.take_along_axis(rows, order, axis=1), np.take_along_axis(sims, order, axis=1))


def minmax(scores: np.ndarray) -> np.ndarray:
    """Per-row min-max normalisation of finite scores to [0, 1]; a constant row becomes 0 (RADIO divides by 0 there)."""
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    lo = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
    hi = np.where(finite, s, -np.inf).max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(finite, (s - lo) / span, np.nan)


def fuse(first: Ranking, second: Ranking, w_first: float = 0.5, w_second: float = 0.5) -> Ranking:
    """Fuse two rankings of the same candidates: ``w_first * minmax(first) + w_second * minmax(second)``, re-sorted.

    Documents are matched by corpus row. A query's two lists must hold the same rows (RADIO re-ranks
    the retriever's candidates); anything else is an error rather than a silently shorter list.
    """
    if first.rows.shape != second.rows.shape:
        raise ValueError(f"rankings of shapes {first.rows.shape} and {second.rows.shape} cannot be fused")
    if w_first < 0 or w_second < 0 or w_first + w_second <= 0:
        raise ConfigError(f"fusion weights must be >= 0 and not both 0; got {w_first}, {w_second}")
    a, b = minmax(first.scores), minmax(second.scores)
    n, k = first.rows.shape
    rows = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    for i in range(n):
        pos_b = {int(r): j for j, r in enumerate(second.rows[i].tolist()) if r >= 0}
        got = [int(r) for r in first.rows[i].tolist() if r >= 0]
        if set(got) != set(pos_b):
            raise DataError(f"query {i}: the two rankings hold different candidates; fuse re-ranks one candidate list")
        fused = [(w_first * a[i, j] + w_second * b[i, pos_b[r]], r) for j, r in enumerate(got)]
        fused.sort(key=lambda t: (-t[0], t[1]))
        rows[i, : len(fused)] = [r for _, r in fused]
        scores[i, : len(fused)] = [s for s, _ in fused]
    return Ranking(rows, scores)


@dataclass(frozen=True)
class SampledGroup:
    """A group's positive row and negative rows; ``fallback`` when the list was shorter than the sampler needs."""

    positive: int
    negatives: tuple[int, ...]
    fallback: bool


def shift_group(order: Sequence[int], sampler: str = "shift") -> SampledGroup | None:
    """Positive = rank 1 of ``order``, negatives at the sampler's ranks (shift: 4, 5, 7, 10, 14, 19).

    Fallback (counted by the caller through ``fallback``): when the list has fewer candidates than
    the deepest rank needs, the missing negatives are the deepest unused ranks from rank 4 upwards,
    then ranks 3 and 2, so the group keeps its size; a list with fewer candidates than the group
    (7 for shift) gives None (the question is skipped and counted), never a smaller group.
    """
    if sampler not in SAMPLERS:
        from recwise.registry import did_you_mean

        raise ConfigError(f"unknown sampler {sampler!r}{did_you_mean(sampler, SAMPLERS)}")
    ranks = SAMPLERS[sampler]
    cand = [int(r) for r in order if r >= 0]
    if len(cand) < len(ranks) + 1:
        return None
    if len(cand) > max(ranks):
        return SampledGroup(cand[0], tuple(cand[r] for r in ranks), False)
    chosen = [r for r in ranks if r < len(cand)]
    spare = [r for r in range(len(cand) - 1, 0, -1) if r not in chosen]  # deepest first: 3..1 come last
    spare = [r for r in spare if r >= 3] + [r for r in spare if r < 3]
    while len(chosen) < len(ranks):
        chosen.append(spare.pop(0))
    return SampledGroup(cand[0], tuple(cand[r] for r in sorted(chosen)), True)
