"""Item text and the bookkeeping every offline LLMERS step shares.

* :func:`read_item_meta`: title, year and genres per raw item id, from MovieLens-100K's item file
  (GroupLens ``u.item`` or RecBole ``ml-100k.item``).
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

from recwise.data.sequence import Sequences, build_sequences
from recwise.errors import DataError
from recwise.results import atomic_write_text

__all__ = ["ItemMeta", "StepStats", "encode_rows", "item_meta_rows", "item_texts", "item_tokens", "read_item_meta",
           "lazy_generator", "write_jsonl"]

GENRES_100K = (
    "unknown Action Adventure Animation Children's Comedy Crime Documentary Drama Fantasy "
    "Film-Noir Horror Musical Mystery Romance Sci-Fi Thriller War Western"
).split()


@dataclass(frozen=True)
class ItemMeta:
    title: str
    year: str
    genres: tuple[str, ...]

    def text(self) -> str:
        year = f" ({self.year})" if self.year else ""
        genres = f" Genres: {', '.join(self.genres)}." if self.genres else ""
        return f"{self.title}{year}.{genres}"


def _split_title(title: str) -> tuple[str, str]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", "1995")``."""
    t = title.strip()
    if t.endswith(")") and "(" in t:
        head, _, tail = t[:-1].rpartition("(")
        if tail.isdigit() and len(tail) == 4:
            return head.strip(), tail
    return t, ""


def read_item_meta(name: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, ItemMeta]:
    """Raw item id -> :class:`ItemMeta`. Only MovieLens-100K has item text here."""
    from recwise.data.datasets._base import read_csv
    from recwise.data.seq_datasets import default_raw_dir

    if name != "ml-100k":
        raise DataError(f"dataset '{name}' has no item text reader (LLMERS runs on ml-100k); item text comes from "
                        "MovieLens-100K's u.item or ml-100k.item")
    raw = Path(data_dir) if data_dir is not None else default_raw_dir(name)
    out: dict[str, ItemMeta] = {}
    if (raw / "u.item").exists():
        path = raw / "u.item"
        df = read_csv(path, separator="|", has_header=False, encoding="utf8-lossy", quote_char=None,
                      new_columns=["item", "title", "release", "video_release", "url", *GENRES_100K])
        flags = df.select(GENRES_100K).to_numpy().astype(bool)
        for token, title, release, row in zip(df["item"].cast(str), df["title"].cast(str), df["release"], flags):
            t, year = _split_title(title or "")
            if not year and release:
                year = str(release)[-4:]
            out[str(token)] = ItemMeta(t, year, tuple(g for g, f in zip(GENRES_100K, row) if f and g != "unknown"))
    elif (raw / "ml-100k.item").exists():
        path = raw / "ml-100k.item"
        df = read_csv(path, separator="\t", quote_char=None, encoding="utf8-lossy", infer_schema=False)
        df = df.rename({c: c.split(":")[0] for c in df.columns})
        missing = [c for c in ("item_id", "movie_title") if c not in df.columns]
        if missing:
            raise DataError(f"item file {path}: column '{missing[0]}' missing (has {df.columns})")
        years = df["release_year"] if "release_year" in df.columns else [None] * len(df)
        genres = df["class"] if "class" in df.columns else [None] * len(df)
        for token, title, year, g in zip(df["item_id"], df["movie_title"], years, genres):
            t, y = _split_title(title or "")
            out[str(token)] = ItemMeta(t, str(year or y or ""),
                                       tuple(x for x in (g or "").split() if x and x != "unknown"))
    else:
        raise DataError(f"no MovieLens-100K item file in {raw}: expected u.item or ml-100k.item; pass --data-dir")
    return out


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


class _LazyLocalBackend:
    """A local generation backend that loads its model on the first cache miss only, so a run
    whose prompts are all cached never loads the LLM (same name and fingerprint, same cache keys)."""

    name = "local"

    def __init__(self, model: str, device: str, batch_size: int) -> None:
        from recwise.llm import resolve_model

        self._args = (model, device, batch_size)
        self.fingerprint = resolve_model(model).fingerprint
        self._backend: Any = None

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def complete(self, rows: Sequence[Any]) -> list[Any]:
        if self._backend is None:
            from recwise.llm import LocalBackend

            model, device, batch_size = self._args
            self._backend = LocalBackend(model, device=device, batch_size=batch_size)
        return self._backend.complete(rows)  # type: ignore[no-any-return]


def lazy_generator(options: dict[str, Any] | None = None) -> Any:
    """:func:`recwise.llm.load_generator`, except that a local model is loaded at its first cache miss."""
    from recwise.config import config_from_dict
    from recwise.llm import Generator, GeneratorConfig, LLMCache, load_generator

    cfg = config_from_dict(GeneratorConfig, dict(options or {}), where="llm")
    if cfg.backend != "local":
        return load_generator(cfg)
    backend = _LazyLocalBackend(cfg.model or "smollm2", cfg.device, cfg.batch_size)
    return Generator(backend, LLMCache(cfg.cache_path) if cfg.cache else None)  # type: ignore[arg-type]
