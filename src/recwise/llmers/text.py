"""Item text and the bookkeeping every offline LLMERS step shares.

* :func:`read_item_meta`: title, year and genres per raw item id, from MovieLens-100K's item file
  (GroupLens ``u.item`` or RecBole ``ml-100k.item``; the readers live in :mod:`recwise.data.item_text`).
* :func:`item_tokens`: raw item id of every internal item id (1..n), rebuilt the way the
  sequential loader builds them (the prepared-data cache does not keep them).
* :func:`item_texts`: ``"Title (year). Genres: a, b."`` per internal item id (row 0 = padding).
* :func:`encode_rows`: texts -> unit vectors through the LLM layer's encoder (and its disk cache),
  with a zero row for padding.
* :class:`StepStats`: prompts sent, model calls, cache hits, templated texts, fallbacks, wall time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recwise.data.item_text import ItemMeta, read_item_meta
from recwise.data.sequence import Sequences, build_sequences
from recwise.errors import DataError
from recwise.results import atomic_write_text

__all__ = ["ItemMeta", "StepStats", "encode_rows", "item_meta_rows", "item_texts", "item_tokens", "read_item_meta",
           "lazy_generator", "write_jsonl"]


def item_tokens(name: str, seqs: Sequences, data_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Raw item id of every internal id (index 0 = ``"[PAD]"``), checked against ``seqs``."""
    if seqs.item_tokens is not None:
        return np.asarray(seqs.item_tokens, dtype=object)
    from recwise.data.seq_datasets import read_interactions, seq_dataset_info

    info = seq_dataset_info(name)
    user, item, t = read_interactions(name, data_dir)
    rebuilt = build_sequences(user, item, t, user_interval=info.user_interval, item_interval=info.item_interval)
    if rebuilt.n_items != seqs.n_items or not np.array_equal(rebuilt.items, seqs.items):
        raise DataError(f"dataset '{name}': the raw files differ from the prepared sequences; clear "
                        f"$RECWISE_HOME/prepared or pass the same --data-dir")
    assert rebuilt.item_tokens is not None
    return np.asarray(rebuilt.item_tokens, dtype=object)


def item_meta_rows(tokens: np.ndarray, meta: dict[str, ItemMeta]) -> list[ItemMeta]:
    """One :class:`ItemMeta` per internal id (row 0 empty); unknown ids are an error."""
    rows = [ItemMeta("", "", ())]
    for tok in tokens[1:]:
        m = meta.get(str(tok))
        if m is None:
            raise DataError(f"item id {tok} of the interactions is missing from the item file")
        rows.append(m)
    return rows


def item_texts(rows: Sequence[ItemMeta]) -> list[str]:
    """``"Title (year). Genres: a, b."`` per internal id; row 0 (padding) is ``""``."""
    return [""] + [m.text() for m in rows[1:]]


@dataclass
class StepStats:
    """What one offline step cost. ``prompts`` counts every prompt sent (retries included),
    ``llm_calls`` those that reached the model (cache misses), ``cache_hits`` the rest."""

    step: str
    prompts: int = 0
    llm_calls: int = 0
    cache_hits: int = 0
    templated: int = 0
    fallbacks: int = 0
    encoded: int = 0
    encoder_calls: int = 0
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    _t0: float = field(default=0.0, repr=False)

    def start(self) -> StepStats:
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> StepStats:
        self.wall_seconds += time.perf_counter() - self._t0
        return self

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_t0")
        return d


def encode_rows(encoder: Any, texts: Sequence[str], stats: StepStats | None = None) -> np.ndarray:
    """Texts (row 0 = padding, not encoded) -> (len, D) float32, row 0 zeros."""
    before = encoder.backend_calls
    vecs = encoder.encode(list(texts[1:]))
    if stats is not None:
        stats.encoded += len(texts) - 1
        stats.encoder_calls += encoder.backend_calls - before
    return np.concatenate([np.zeros((1, vecs.shape[1]), np.float32), vecs]).astype(np.float32)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, written atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def lazy_generator(options: dict[str, Any] | None = None) -> Any:
    """:func:`recwise.llm.load_generator` from the ``llm.*`` options (a local model loads at its first
    cache miss, so a run whose prompts are all cached never loads the LLM)."""
    from recwise.config import config_from_dict
    from recwise.llm import GeneratorConfig, load_generator

    return load_generator(config_from_dict(GeneratorConfig, dict(options or {}), where="llm"))
