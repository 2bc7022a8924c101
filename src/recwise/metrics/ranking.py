"""Full-ranking metrics for one target item per user: Hit@k, NDCG@k, MRR@k.

Ranks are 0-based and **pessimistic on ties**: ``rank = #{items scoring > target} + #{other items
scoring == target}``, so a model that scores everything equally ranks the target last, never first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["hit_at_k", "mask_history", "mrr_at_k", "ndcg_at_k", "rank_gains", "ranking_metrics", "target_ranks"]


def target_ranks(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """0-based rank of ``target[b]`` among ``scores[b]`` (B, V) -> (B,) int64, ties pessimistic.

    Items scored ``-inf`` (padding, masked history) are never ranked above a finite target.
    """
    t = scores.gather(1, target.view(-1, 1))
    return (scores > t).sum(1) + (scores == t).sum(1) - 1


def mask_history(scores: torch.Tensor, items: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                 target: torch.Tensor) -> torch.Tensor:
    """Set the scores of each row's history items ``items[start_b:end_b]`` to ``-inf``, in place.

    The target keeps its score even when it also occurs in the history (a repeat), so masking
    never makes a target unrankable. Vectorised over the flat history ranges.
    """
    n = (end - start).clamp(min=0)
    rows = torch.repeat_interleave(torch.arange(len(start), device=scores.device), n)
    first = torch.repeat_interleave(start - torch.cumsum(n, 0) + n, n)
    flat = first + torch.arange(int(n.sum()), device=scores.device)
    t_score = scores.gather(1, target.view(-1, 1)).clone()
    scores[rows, items[flat]] = -float("inf")
    scores.scatter_(1, target.view(-1, 1), t_score)
    return scores


def _ranks(ranks: np.ndarray) -> np.ndarray:
    """Ranks as float64 (exact up to 2**53), so every gain and mean below is summed in float64."""
    return np.asarray(ranks, dtype=np.float64)


def hit_at_k(ranks: np.ndarray, k: int) -> float:
    r = _ranks(ranks)
    return float(np.mean(r < k, dtype=np.float64)) if len(r) else float("nan")


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    r = _ranks(ranks)
    if not len(r):
        return float("nan")
    return float(np.mean(np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)))


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    r = _ranks(ranks)
    if not len(r):
        return float("nan")
    return float(np.mean(np.where(r < k, 1.0 / (r + 1.0), 0.0)))


def rank_gains(ranks: np.ndarray, metric: str) -> np.ndarray | None:
    """Each row's own value of ``metric`` (``hit@k``, ``ndcg@k``, ``mrr@k``) from its 0-based rank,
    as float64: the metric is their mean. None when ``metric`` is not one of these (AUC, a loss)."""
    name, _, k_text = metric.partition("@")
    if name not in ("hit", "ndcg", "mrr") or not k_text.isdigit() or int(k_text) < 1:
        return None
    r, k = _ranks(ranks), int(k_text)
    if name == "hit":
        return (r < k).astype(np.float64)
    return np.where(r < k, 1.0 / (np.log2(r + 2.0) if name == "ndcg" else r + 1.0), 0.0)


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = (5, 10, 20)) -> dict[str, float]:
    """``{"hit@k", "ndcg@k", "mrr@k"}`` for every k from 0-based ranks of the targets."""
    ranks = _ranks(ranks)
    out: dict[str, float] = {}
    for k in ks:
        out[f"hit@{k}"] = hit_at_k(ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
        out[f"mrr@{k}"] = mrr_at_k(ranks, k)
    return out
