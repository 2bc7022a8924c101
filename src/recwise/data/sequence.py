"""Sequence data: per-user, time-ordered item sequences held as flat arrays plus offsets.

Everything here is vectorised numpy: building padded windows, training examples and evaluation
inputs never loops over users or examples in Python.

The pipeline, RecBole's conventions unless stated:

1. :func:`kcore_filter` drops users and items whose interaction counts fall outside
   ``[lo, hi)`` intervals, repeating until nothing changes (RecBole's ``user_inter_num_interval`` /
   ``item_inter_num_interval``).
2. :func:`build_sequences` remaps ids to ``1..n`` (0 is padding), sorts each user's interactions
   by time (stable: ties keep file order, as RecBole's multi-key sort does) and returns
   :class:`Sequences`: ``items`` (flat, user after user) and ``offsets`` (``U + 1``).
3. The leave-one-out split by time: for a user with ``n >= 3`` items the last is the test target,
   the second-last the validation target, the first ``n - 2`` are training data. Users with fewer
   than 3 items only train.
4. Training examples, two constructions:

   * ``prefix`` (RecBole's ``data_augmentation``): one example per training target, the input is
     the (up to ``max_len``) items before it, the loss is on the last position only. A user with
     ``n`` items gives ``n - 3`` examples.
   * ``sequence`` (recwise's default for causal models): each user's training items are cut into
     windows of ``max_len + 1`` items ending at the latest one; inputs are ``window[:-1]``, targets
     ``window[1:]``, with a loss at every non-padding position. Every training target appears in
     exactly one window, so an epoch sees the same targets as ``prefix`` with about ``max_len``
     times fewer forward positions.

Windows keep the **latest** ``max_len`` items; ``padding="right"`` puts items at positions
``0..len-1`` (RecBole), ``"left"`` at ``max_len-len..max_len-1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from recwise.data.schema import Field, FieldKind, Schema
from recwise.errors import ConfigError, DataError

__all__ = [
    "SeqDataConfig",
    "make_examples",
    "seq_schema",
    "Padding",
    "Sequences",
    "build_sequences",
    "eval_inputs",
    "kcore_filter",
    "prefix_examples",
    "sequence_examples",
    "windows",
]

Padding = Literal["left", "right"]
Interval = tuple[float, float] | None


def _in(counts: np.ndarray, interval: Interval) -> np.ndarray:
    if interval is None:
        return np.ones(len(counts), dtype=bool)
    lo, hi = interval
    return (counts >= lo) & (counts < hi)


def kcore_filter(
    user: np.ndarray, item: np.ndarray, *, user_interval: Interval = None, item_interval: Interval = None,
    max_rounds: int = 1000,
) -> np.ndarray:
    """Boolean mask of the interactions that survive iterative interval filtering.

    Each round counts interactions per user and per item on the surviving rows, then drops every
    row whose user or item count is outside its ``[lo, hi)`` interval (``None`` = no filter);
    rounds repeat until a round drops nothing, as RecBole's ``_filter_by_inter_num``.
    """
    keep = np.ones(len(user), dtype=bool)
    if user_interval is None and item_interval is None:
        return keep
    nu, ni = int(user.max()) + 1, int(item.max()) + 1
    for _ in range(max_rounds):
        u, i = user[keep], item[keep]
        ucount = np.bincount(u, minlength=nu)
        icount = np.bincount(i, minlength=ni)
        bad_u = ~_in(ucount, user_interval) & (ucount > 0)
        bad_i = ~_in(icount, item_interval) & (icount > 0)
        if not bad_u.any() and not bad_i.any():
            return keep
        keep &= ~bad_u[user] & ~bad_i[item]
    raise DataError(f"k-core filtering did not converge in {max_rounds} rounds")


@dataclass
class Sequences:
    """Time-ordered item sequences of all users.

    ``items[offsets[u]:offsets[u+1]]`` are user ``u``'s item ids (1..n_items; 0 is padding) in time
    order. ``n_items`` counts real items (the embedding table has ``n_items + 1`` rows).
    ``user_tokens`` / ``item_tokens`` map ids back to the raw ids (index 0 of ``item_tokens`` is
    ``"[PAD]"``).
    """

    items: np.ndarray
    offsets: np.ndarray
    n_items: int
    user_tokens: np.ndarray | None = None
    item_tokens: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.items)

    def user_items(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]


def build_sequences(
    user: np.ndarray, item: np.ndarray, time: np.ndarray, *, user_interval: Interval = None,
    item_interval: Interval = None,
) -> Sequences:
    """Filter, remap and sort raw interactions (any hashable ids) into :class:`Sequences`."""
    user, item, time = np.asarray(user), np.asarray(item), np.asarray(time)
    if not (len(user) == len(item) == len(time)):
        raise DataError(f"user/item/time columns differ in length: {len(user)}, {len(item)}, {len(time)}")
    if len(user) == 0:
        raise DataError("no interactions to build sequences from")
    user_tokens, uid = np.unique(user, return_inverse=True)
    item_tokens, iid = np.unique(item, return_inverse=True)
    keep = kcore_filter(uid, iid, user_interval=user_interval, item_interval=item_interval)
    if not keep.any():
        raise DataError(f"k-core filtering with user interval {user_interval} and item interval "
                        f"{item_interval} removed every interaction; widen the intervals")
    uid, iid, time = uid[keep], iid[keep], time[keep]
    # compact ids after filtering; items get 1..n (0 = padding)
    used_u, uid = np.unique(uid, return_inverse=True)
    used_i, iid = np.unique(iid, return_inverse=True)
    order = np.lexsort((time, uid))  # stable: by user, then time, ties in file order
    items = (iid[order] + 1).astype(np.int64)
    counts = np.bincount(uid, minlength=len(used_u))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    item_tok = np.concatenate([np.array(["[PAD]"], dtype=object), item_tokens[used_i].astype(object)])
    return Sequences(items, offsets, len(used_i), user_tokens[used_u], item_tok)


def windows(
    items: np.ndarray, start: np.ndarray, end: np.ndarray, max_len: int, padding: Padding = "right"
) -> tuple[np.ndarray, np.ndarray]:
    """Padded windows of the latest ``<= max_len`` items of ``items[start_k:end_k]`` for every k.

    Returns ``(seq, length)``: ``seq`` (K, max_len) int64, ``length`` (K,) int64. Vectorised.
    """
    if padding not in ("left", "right"):
        raise ConfigError(f"option 'padding' must be 'left' or 'right'; got {padding!r}")
    start = np.maximum(np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64) - max_len)
    end = np.asarray(end, dtype=np.int64)
    length = np.maximum(end - start, 0)
    pos = np.arange(max_len, dtype=np.int64)[None, :]
    if padding == "right":
        idx = start[:, None] + pos
        valid = pos < length[:, None]
    else:
        idx = end[:, None] - max_len + pos
        valid = pos >= (max_len - length)[:, None]
    seq = np.where(valid, items[np.clip(idx, 0, max(len(items) - 1, 0))], 0) if len(items) else np.zeros(
        (len(end), max_len), dtype=np.int64)
    return seq.astype(np.int64), length


def _train_ranges(seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """Per user, the flat range of training items: all but the last two (users with >= 3 items)."""
    start, stop = seqs.offsets[:-1], seqs.offsets[1:]
    n = stop - start
    train_stop = np.where(n >= 3, stop - 2, stop)
    return start, train_stop


def prefix_examples(seqs: Sequences, max_len: int, padding: Padding = "right") -> dict[str, torch.Tensor]:
    """RecBole's construction: one example per training target (every prefix).

    Returns ``item_seq`` (N, max_len), ``item_len`` (N,), ``target`` (N,) and ``user`` (N,).
    """
    start, stop = _train_ranges(seqs)
    n_ex = np.maximum(stop - start - 1, 0)
    user = np.repeat(np.arange(seqs.n_users), n_ex)
    # target positions: start+1 .. stop-1 for each user
    first = np.repeat(start + 1 - np.concatenate([[0], np.cumsum(n_ex)[:-1]]), n_ex)
    tpos = first + np.arange(int(n_ex.sum()))
    seq, length = windows(seqs.items, seqs.offsets[user], tpos, max_len, padding)
    return {"item_seq": torch.from_numpy(seq), "item_len": torch.from_numpy(length),
            "target": torch.from_numpy(seqs.items[tpos].copy()), "user": torch.from_numpy(user)}


def sequence_examples(seqs: Sequences, max_len: int, padding: Padding = "right") -> dict[str, torch.Tensor]:
    """One window per ``max_len`` training targets with a target at every position.

    Returns ``item_seq`` (W, max_len), ``item_len`` (W,), ``target_seq`` (W, max_len) (0 where no
    loss) and ``user`` (W,). Targets are the inputs shifted by one: ``target_seq[:, j]`` is the item
    that follows ``item_seq[:, j]``; windows of one user do not overlap in targets.
    """
    start, stop = _train_ranges(seqs)
    n_targets = np.maximum(stop - start - 1, 0)
    n_win = -(-n_targets // max_len)  # ceil
    user = np.repeat(np.arange(seqs.n_users), n_win)
    k = np.arange(int(n_win.sum())) - np.repeat(np.concatenate([[0], np.cumsum(n_win)[:-1]]), n_win)
    tgt_end = stop[user] - k * max_len  # exclusive end of this window's targets
    tgt_start = np.maximum(tgt_end - max_len, start[user] + 1)
    inputs, length = windows(seqs.items, tgt_start - 1, tgt_end - 1, max_len, padding)
    targets, _ = windows(seqs.items, tgt_start, tgt_end, max_len, padding)
    return {"item_seq": torch.from_numpy(inputs), "item_len": torch.from_numpy(length),
            "target_seq": torch.from_numpy(targets), "user": torch.from_numpy(user)}


def eval_inputs(
    seqs: Sequences, split: Literal["val", "test"], max_len: int, padding: Padding = "right"
) -> dict[str, torch.Tensor]:
    """Leave-one-out evaluation examples for users with >= 3 items.

    ``test``: history = all but the last item, target = the last; ``val``: history = all but the
    last two, target = the second-last. Returns ``item_seq``, ``item_len`` (truncated history
    length), ``target``, ``user``, ``hist_start``/``hist_end`` (flat range of the full history, for
    history masking).
    """
    if split not in ("val", "test"):
        raise ConfigError(f"split must be 'val' or 'test'; got {split!r}")
    start, stop = seqs.offsets[:-1], seqs.offsets[1:]
    users = np.nonzero(stop - start >= 3)[0]
    tpos = stop[users] - (1 if split == "test" else 2)
    seq, length = windows(seqs.items, start[users], tpos, max_len, padding)
    return {"item_seq": torch.from_numpy(seq), "item_len": torch.from_numpy(length),
            "target": torch.from_numpy(seqs.items[tpos].copy()), "user": torch.from_numpy(users),
            "hist_start": torch.from_numpy(start[users].copy()), "hist_end": torch.from_numpy(tpos.copy())}


# ----------------------------------------------------------------------------- protocol options and examples


@dataclass(frozen=True)
class SeqDataConfig:
    """Data and protocol options (``--set data.<name>=...``)."""

    max_len: int = 0  # 0: the dataset's default (50; 200 for ML-1M)
    padding: Literal["right", "left"] = "right"
    examples: Literal["auto", "prefix", "sequence", "cloze"] = "auto"
    mask_history: bool = False

    def __post_init__(self) -> None:
        if self.max_len < 0:
            raise ConfigError(f"option 'data.max_len' must be >= 0; got {self.max_len}")


def seq_schema(n_items: int) -> Schema:
    """``n_items`` real items -> the schema models are built from (vocab includes padding 0)."""
    return Schema((Field("item_seq", FieldKind.SEQUENCE, n_items + 1, "item ids, 0 = padding"),))


def make_examples(seqs: Sequences, kind: str, max_len: int, padding: Padding) -> dict[str, torch.Tensor]:
    """Training examples of one construction: ``prefix``, ``sequence`` or ``cloze`` (BERT4Rec)."""
    if kind == "prefix":
        return prefix_examples(seqs, max_len, padding)
    if kind in ("sequence", "cloze"):
        ex = sequence_examples(seqs, max_len, padding)
        if kind == "cloze":  # BERT4Rec: windows of training items; the loss masks items itself
            ex = {"item_seq": ex["target_seq"], "item_len": ex["item_len"], "user": ex["user"]}
        return ex
    raise ConfigError(f"unknown example construction {kind!r}")
