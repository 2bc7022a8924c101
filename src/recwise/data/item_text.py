"""Item text from a dataset's raw item files: the one place that reads them.

Readers (each returns ``raw item id -> text or record``):

* :func:`read_u_item`: MovieLens-100K ``u.item`` (``id|title|release date|video date|url|19 genre
  flags``, latin-1) -> :class:`ItemMeta` (title, year, genres). The one u.item reader; two callers
  read the year and the bytes differently, and each keeps the output it has always had:

  - ``year_from="release"`` (PAD): the year of the release date; the title keeps a year of its own
    unless it is that year (``"Richard III (1995)"`` released 1996 -> title ``"Richard III
    (1995)"``, year ``1996``);
  - ``year_from="title"`` (LLMERS): the title's trailing ``(yyyy)`` is split off and is the year,
    the release date's year only when the title has none (-> ``"Richard III"``, ``1995``).

  The two differ on 198 of the 1,682 items. ``encoding="utf8-lossy"`` (LLMERS) decodes the file
  as UTF-8 with replacement characters, as its earlier polars reader did, so the 9 titles with
  latin-1 letters carry U+FFFD there (``"Mis\\ufffdrables, Les"``); ``"latin-1"`` (PAD) reads them
  right.
* :func:`read_ml100k_atomic`: RecBole's ``ml-100k.item`` -> :class:`ItemMeta`.
* :func:`read_atomic_item`: any RecBole ``.item`` file -> every ``token``/``token_seq`` column
  after the id, joined.
* :func:`read_movies_dat`: MovieLens-1M ``movies.dat``.
* :func:`read_json_meta`: Amazon 2014 metadata (Python-literal lines) and Yelp business JSON lines.

Lookups: :func:`item_text_file` (the text file of a dataset in a raw folder and its reader),
:func:`item_texts` (one text per internal item id, PAD's), :func:`read_item_meta`
(MovieLens-100K's :class:`ItemMeta` per raw id, LLMERS').
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recwise.errors import ConfigError, DataError

__all__ = ["GENRES_100K", "ItemMeta", "item_text_file", "item_texts", "read_atomic_item", "read_item_meta",
           "read_json_meta", "read_ml100k_atomic", "read_movies_dat", "read_u_item", "split_title"]

GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western")


@dataclass(frozen=True)
class ItemMeta:
    """A movie's title (without its year), year and genres."""

    title: str
    year: str
    genres: tuple[str, ...]

    def text(self) -> str:
        """``"Title (year). Genres: a, b."`` (LLMERS' item text)."""
        year = f" ({self.year})" if self.year else ""
        genres = f" Genres: {', '.join(self.genres)}." if self.genres else ""
        return f"{self.title}{year}.{genres}"

    def words(self) -> str:
        """``"Title year a b"`` (PAD's item text)."""
        return " ".join(x for x in (self.title, self.year, " ".join(self.genres)) if x)


def split_title(title: str) -> tuple[str, str]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", "1995")``; a title without a trailing year -> ``(title, "")``."""
    t = title.strip()
    if t.endswith(")") and "(" in t:
        head, _, tail = t[:-1].rpartition("(")
        if tail.isdigit() and len(tail) == 4:
            return head.strip(), tail
    return t, ""


def read_u_item(path: Path, *, year_from: Literal["release", "title"] = "release",
                encoding: Literal["latin-1", "utf8-lossy"] = "latin-1") -> dict[str, ItemMeta]:
    """ML-100K ``u.item`` -> raw id -> :class:`ItemMeta` (see the module docstring for the options)."""
    if year_from not in ("release", "title"):
        raise ConfigError(f"year_from must be 'release' or 'title'; got {year_from!r}")
    if encoding not in ("latin-1", "utf8-lossy"):
        raise ConfigError(f"encoding must be 'latin-1' or 'utf8-lossy'; got {encoding!r}")
    if not path.is_file():
        raise DataError(f"raw file {path} does not exist")
    data = path.read_bytes()
    text = data.decode("latin-1") if encoding == "latin-1" else data.decode("utf-8", errors="replace")
    out: dict[str, ItemMeta] = {}
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        f = line.split("|")
        if len(f) < 5 + len(GENRES_100K):
            raise DataError(f"item file {path}: line {n} has {len(f)} fields; expected {5 + len(GENRES_100K)}")
        genres = tuple(g for g, flag in zip(GENRES_100K, f[5:]) if flag.strip() == "1" and g != "unknown")
        release_year = f[2][-4:] if f[2] else ""
        if year_from == "release":
            title, year = f[1], release_year
            if year and title.endswith(f"({year})"):
                title = title[: -len(year) - 2].strip()
        else:
            title, year = split_title(f[1])
            year = year or release_year
        out[f[0]] = ItemMeta(title, year, genres)
    return out


def read_ml100k_atomic(path: Path) -> dict[str, ItemMeta]:
    """RecBole's ``ml-100k.item`` (``item_id``, ``movie_title``, ``release_year``, ``class``) -> :class:`ItemMeta`."""
    from recwise.data.datasets._base import read_csv

    df = read_csv(path, separator="\t", quote_char=None, encoding="utf8-lossy", infer_schema=False)
    df = df.rename({c: c.split(":")[0] for c in df.columns})
    missing = [c for c in ("item_id", "movie_title") if c not in df.columns]
    if missing:
        raise DataError(f"item file {path}: column '{missing[0]}' missing (has {df.columns})")
    years = df["release_year"] if "release_year" in df.columns else [None] * len(df)
    genres = df["class"] if "class" in df.columns else [None] * len(df)
    out: dict[str, ItemMeta] = {}
    for token, title, year, g in zip(df["item_id"], df["movie_title"], years, genres):
        t, y = split_title(title or "")
        out[str(token)] = ItemMeta(t, str(year or y or ""), tuple(x for x in (g or "").split() if x and x != "unknown"))
    return out


def read_atomic_item(path: Path) -> dict[str, str]:
    """A RecBole ``.item`` file: every ``token``/``token_seq`` column after the id, joined."""
    import polars as pl

    df = pl.read_csv(path, separator="\t", quote_char=None, encoding="utf8-lossy", infer_schema=False)
    cols = [c for c in df.columns if c.split(":")[-1] in ("token", "token_seq")]
    if not cols or not cols[0].startswith(("item_id", "business_id")):
        raise DataError(f"item file {path}: expected an 'item_id:token' column first; got {df.columns[:3]}")
    idc, text_cols = cols[0], [c for c in cols[1:] if not c.startswith(("sales_rank", "price"))]
    rows = df.select([idc, *text_cols]).fill_null("").iter_rows()
    return {r[0]: " ".join(str(v) for v in r[1:] if v).strip() for r in rows}


def read_movies_dat(path: Path) -> dict[str, str]:
    """ML-1M ``movies.dat``: ``MovieID::Title (Year)::Genre|Genre``."""
    out = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        f = line.split("::")
        if len(f) >= 3:
            out[f[0]] = f"{f[1]} {f[2].replace('|', ' ')}"
    return out


def read_json_meta(path: Path, id_field: str, fields: Sequence[str]) -> dict[str, str]:
    """Amazon 2014 metadata (Python-literal lines) or Yelp business JSON lines: ``fields`` joined."""
    import ast
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    out = {}
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                try:
                    rec = ast.literal_eval(line)
                except (ValueError, SyntaxError):
                    raise DataError(f"item file {path}: line {n} is neither JSON nor a Python literal") from None
            parts = []
            for fld in fields:
                v = rec.get(fld)
                if isinstance(v, list):
                    v = " ".join(" ".join(x) if isinstance(x, list) else str(x) for x in v)
                if v:
                    parts.append(str(v))
            if id_field in rec:
                out[str(rec[id_field])] = " ".join(parts)
    return out


def _u_item_words(path: Path) -> dict[str, str]:
    return {k: m.words() for k, m in read_u_item(path, year_from="release", encoding="latin-1").items()}


_AMAZON = {"amazon-beauty": "Beauty", "amazon-sports": "Sports_and_Outdoors", "amazon-games": "Video_Games"}


def item_text_file(dataset: str, raw: Path) -> tuple[Path, Callable[[Path], dict[str, str]]]:
    """The item-text file of ``dataset`` in ``raw`` and its reader (raw id -> one text)."""
    known: dict[str, list[tuple[str, Callable[[Path], dict[str, str]]]]] = {
        "ml-100k": [("ml-100k.item", read_atomic_item), ("u.item", _u_item_words)],
        "ml-1m": [("ml-1m.item", read_atomic_item), ("movies.dat", read_movies_dat)],
        "yelp": [("yelp.item", read_atomic_item),
                 ("yelp_academic_dataset_business.json",
                  lambda p: read_json_meta(p, "business_id", ("name", "categories", "city")))],
    }
    candidates = known.get(dataset, [])
    if dataset in _AMAZON:
        cat = _AMAZON[dataset]
        meta = lambda p: read_json_meta(p, "asin", ("title", "brand", "categories"))  # noqa: E731
        candidates = [(f"Amazon_{cat}.item", read_atomic_item), (f"meta_{cat}.json.gz", meta),
                      (f"meta_{cat}.json", meta)]
    for name, reader in candidates:
        if (raw / name).is_file():
            return raw / name, reader
    raise DataError(f"no item text file for dataset '{dataset}' in {raw}: expected one of "
                    f"{[c[0] for c in candidates] or 'a RecBole .item file'}")


def item_texts(dataset: str, raw: Path, item_tokens: Sequence[Any]) -> tuple[list[str], int]:
    """Texts for item ids ``1..n`` (``item_tokens[0]`` is padding) and how many had none.

    An item without text gets ``"item <raw id>"`` (PAD's release drops such items; here they stay
    so the interaction data is the same as the other sequential models').
    """
    path, reader = item_text_file(dataset, raw)
    table = reader(path)
    texts, missing = [], 0
    for tok in list(item_tokens)[1:]:
        t = table.get(str(tok), "").strip()
        if not t:
            missing += 1
            t = f"item {tok}"
        texts.append(t)
    return texts, missing


def read_item_meta(name: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, ItemMeta]:
    """MovieLens-100K: raw item id -> :class:`ItemMeta`, from ``u.item`` (title's year, as LLMERS
    has read it) or else ``ml-100k.item``. Other datasets have no such record here."""
    from recwise.data.seq_datasets import default_raw_dir

    if name != "ml-100k":
        raise DataError(f"dataset '{name}' has no item text reader (LLMERS runs on ml-100k); item text comes from "
                        "MovieLens-100K's u.item or ml-100k.item")
    raw = Path(data_dir) if data_dir is not None else default_raw_dir(name)
    if (raw / "u.item").exists():
        return read_u_item(raw / "u.item", year_from="title", encoding="utf8-lossy")
    if (raw / "ml-100k.item").exists():
        return read_ml100k_atomic(raw / "ml-100k.item")
    raise DataError(f"no MovieLens-100K item file in {raw}: expected u.item or ml-100k.item; pass --data-dir")
