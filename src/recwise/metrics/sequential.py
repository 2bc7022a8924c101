"""Sequential metrics by popularity bin of the target (candidate) item, and by user history length.

PAD (Wang et al., SIGIR 2025) sorts items by training frequency and cuts them into 10 bins of
equal interaction mass (bin 1 = the most popular items, bin 10 = the coldest; 0 = padding); its
released cut points for Prime Pantry match that rule (``0, 35, 100, ..., 3348, 8348``). The same
bins split evaluation here: each test user's target item falls in one bin, and Hit@k / NDCG@k /
MRR@k are computed per bin (segments ``pop=1`` .. ``pop=10``), per coarse group (``pop=warm``:
bins 1-5, the items holding the first half of the interactions; ``pop=cold``: bins 6-10), and for
the users with the shortest full histories (``hist=short``: the shortest ``short_quantile`` share).

Typical use, for any model with ``forward(batch) -> (B, V)`` scores::

    counts = train_item_counts(seqs)
    bins = popularity_bins(counts)                       # (V,) int64, 0 = padding
    res = evaluate_by_popularity(model, test, items, bins, mask=True)
    res["pop=10"]["ndcg@10"], res["pop=cold"]["hit@10"], res["hist=short"]["ndcg@10"]

or, with ranks computed elsewhere, :func:`segment_metrics` (ranks, targets, bins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from recwise.data.sequence import Sequences
from recwise.data.table import Batch, BatchLoader
from recwise.errors import ConfigError
from recwise.metrics.ranking import mask_history, ranking_metrics, target_ranks

__all__ = ["DEFAULT_GROUPS", "KS", "LENGTH_GROUPS", "length_group", "evaluate_by_popularity", "model_ranks",
           "popularity_bins", "segment_metrics", "train_item_counts"]

KS = (5, 10, 20)  # Hit@k, NDCG@k, MRR@k cut-offs of the sequential protocols
LENGTH_GROUPS = ((0, 5), (5, 20), (20, float("inf")))  # user groups by (truncated) history length


def length_group(lo: float, hi: float) -> str:
    """The segment name of a history-length group: ``len=5-20``, ``len=20-inf``."""
    return f"len={int(lo)}-{'inf' if hi == float('inf') else int(hi)}"


# coarse groups over the 10 equal-mass bins: warm = items carrying the first half of the interactions
DEFAULT_GROUPS: Mapping[str, tuple[int, ...]] = {"pop=warm": (1, 2, 3, 4, 5), "pop=cold": (6, 7, 8, 9, 10)}


def train_item_counts(seqs: Sequences) -> np.ndarray:
    """Interactions per item id (length ``n_items + 1``, index 0 = padding = 0) over the training
    part of every sequence: all but the last two items of users with >= 3 items (the leave-one-out
    split of :mod:`recwise.data.sequence`), so validation and test targets never count."""
    start, stop = seqs.offsets[:-1], seqs.offsets[1:]
    n = stop - start
    train_stop = np.where(n >= 3, stop - 2, stop)
    keep = np.zeros(len(seqs.items) + 1, dtype=np.int64)
    np.add.at(keep, start, 1)
    np.add.at(keep, train_stop, -1)
    mask = np.cumsum(keep)[:-1] > 0
    counts = np.bincount(seqs.items[mask], minlength=seqs.n_items + 1).astype(np.int64)
    counts[0] = 0
    return counts


def popularity_bins(counts: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Item id -> popularity bin ``1..n_bins`` (1 = most popular), 0 for padding (id 0).

    Items are sorted by ``counts`` (descending, ties by id) and cut where the cumulative share of
    interactions first reaches ``k / n_bins``, so every bin holds about the same interaction mass
    (PAD's bins). Items never seen in training fall in the last bin.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) < 2:
        raise ConfigError(f"counts must be a 1-d array with padding at index 0; got shape {counts.shape}")
    if n_bins < 1:
        raise ConfigError(f"option 'n_bins' must be >= 1; got {n_bins}")
    c = counts[1:].copy()
    order = np.argsort(-c, kind="stable")
    total = c.sum()
    bins = np.full(len(counts), n_bins, dtype=np.int64)
    if total > 0:
        share = np.cumsum(c[order]) / total
        # rank r (0-based) goes to the first bin k whose cut k/n_bins its predecessor's share has not reached
        prev = np.concatenate([[0.0], share[:-1]])
        k = np.floor(prev * n_bins + 1e-9).astype(np.int64) + 1
        bins[order + 1] = np.minimum(k, n_bins)
        bins[1:][c == 0] = n_bins
    bins[0] = 0
    return bins


@torch.no_grad()
def model_ranks(model: nn.Module, data: Batch, items: torch.Tensor, *, mask: bool = False,
                batch_size: int = 4096) -> np.ndarray:
    """0-based full-ranking ranks of each row's target (padding excluded, ties pessimistic), as
    as the sequential protocol's ``evaluate`` uses them; ``mask`` scores history items -inf."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    items = items.to(device)
    ranks = []
    for b in BatchLoader(dict(data.items()), batch_size, device=device):
        scores = model(b).float()
        scores[:, 0] = -float("inf")
        if mask:
            mask_history(scores, items, b["hist_start"], b["hist_end"], b["target"])
        ranks.append(target_ranks(scores, b["target"]).cpu())
    model.train(was)
    return torch.cat(ranks).numpy() if ranks else np.zeros(0, dtype=np.int64)


def segment_metrics(
    ranks: np.ndarray,
    target: np.ndarray | torch.Tensor,
    bins: np.ndarray,
    *,
    ks: Sequence[int] = (5, 10, 20),
    groups: Mapping[str, Sequence[int]] | None = DEFAULT_GROUPS,
    history: np.ndarray | torch.Tensor | None = None,
    short_quantile: float = 0.2,
) -> dict[str, dict[str, float]]:
    """Metrics overall (``all``), per target-item bin (``pop=<b>``), per bin group and, when
    ``history`` (full history length per row) is given, for the shortest-history users
    (``hist=short``: length <= the ``short_quantile`` quantile; ``hist=rest``: the others).

    Every segment carries ``users`` (its row count); an empty segment has NaN metrics.
    """
    ranks = np.asarray(ranks)
    tb = np.asarray(bins)[np.asarray(target)]
    out = {"all": {**ranking_metrics(ranks, ks), "users": float(len(ranks))}}
    n_bins = int(np.asarray(bins).max())
    for b in range(1, n_bins + 1):
        sel = tb == b
        out[f"pop={b}"] = {**ranking_metrics(ranks[sel], ks), "users": float(sel.sum())}
    for name, members in (groups or {}).items():
        sel = np.isin(tb, list(members))
        out[name] = {**ranking_metrics(ranks[sel], ks), "users": float(sel.sum())}
    if history is not None:
        h = np.asarray(history)
        cut = float(np.quantile(h, short_quantile)) if len(h) else 0.0
        for name, sel in (("hist=short", h <= cut), ("hist=rest", h > cut)):
            out[name] = {**ranking_metrics(ranks[sel], ks), "users": float(sel.sum()), "max_history": cut}
    return out


def evaluate_by_popularity(
    model: nn.Module,
    data: Batch,
    items: torch.Tensor,
    bins: np.ndarray,
    *,
    mask: bool = False,
    batch_size: int = 4096,
    ks: Sequence[int] = (5, 10, 20),
    groups: Mapping[str, Sequence[int]] | None = DEFAULT_GROUPS,
    short_quantile: float = 0.2,
) -> dict[str, dict[str, float]]:
    """Full-ranking metrics of ``model`` on ``data`` (from :func:`recwise.data.sequence.eval_inputs`)
    overall, per popularity bin of the target item and for the shortest-history users.

    ``items`` is the flat item array of the sequences (for history masking); ``bins`` comes from
    :func:`popularity_bins`. The full history length of a row is ``hist_end - hist_start``.
    """
    ranks = model_ranks(model, data, items, mask=mask, batch_size=batch_size)
    history = (data["hist_end"] - data["hist_start"]).numpy() if "hist_end" in data else None
    return segment_metrics(ranks, data["target"].numpy(), bins, ks=ks, groups=groups, history=history,
                           short_quantile=short_quantile)
