"""Sequential-recommendation datasets: raw interaction files -> :class:`~recwise.data.sequence.Sequences`.

This registry is separate from the multi-scenario one (``recwise.data.datasets``): the same name
(``ml-100k``) means "user, item, time" here. Each dataset accepts its original raw format and the
RecBole atomic format (``<name>.inter``, tab-separated, ``field:type`` header), and carries the
filtering that SIGMA's logged RecBole configs use (intervals are ``[lo, hi)``):

==================  =====================================================  ==============  =======
name                raw files (any one layout)                              user & item     max len
==================  =====================================================  ==============  =======
ml-100k             ``u.data`` or ``ml-100k.inter``                          none            50
ml-1m               ``ratings.dat`` or ``ml-1m.inter``                       [5, inf)        200
amazon-beauty       ``reviews_Beauty_5.json(.gz)``, ``ratings_Beauty.csv``  [5, inf)        50
                    or ``Amazon_Beauty.inter``
amazon-sports       same with ``Sports_and_Outdoors``                        [5, 200)        50
amazon-games        same with ``Video_Games``                                [5, inf)        50
yelp                ``yelp_academic_dataset_review.json`` or ``yelp.inter``  [5, 100)        50
==================  =====================================================  ==============  =======

ML-100K keeps every interaction so that it matches RecBole's quick-start run (100,000 rows,
943 users, 1,682 items). Prepared sequences are cached like every other dataset (atomic write,
keyed by a hash of the raw files and the options).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recwise.data.cache import Prepared, cache_key, default_root, load_prepared, save_prepared
from recwise.data.datasets._base import read_csv, require_columns
from recwise.data.schema import Field, FieldKind, Schema
from recwise.data.sequence import Interval, Sequences, build_sequences
from recwise.data.table import Table
from recwise.errors import DataError
from recwise.registry import Registry

__all__ = ["SeqDatasetInfo", "list_seq_datasets", "load_sequences", "read_interactions", "seq_dataset_info"]

Raw = tuple[np.ndarray, np.ndarray, np.ndarray]  # user, item, time


@dataclass(frozen=True)
class SeqDatasetInfo:
    name: str
    description: str
    find_files: Callable[[Path], list[Path]]
    read: Callable[[list[Path]], Raw]
    user_interval: Interval = None
    item_interval: Interval = None
    max_len: int = 50
    version: int = 1


SEQ_DATASETS: Registry[SeqDatasetInfo] = Registry("sequential dataset", hint="(`recwise data list` lists them)")


def _register(info: SeqDatasetInfo) -> None:
    SEQ_DATASETS.add(info.name, info)


def list_seq_datasets() -> list[str]:
    return SEQ_DATASETS.names()


def seq_dataset_info(name: str) -> SeqDatasetInfo:
    return SEQ_DATASETS.get(name)


# ----------------------------------------------------------------------------- raw readers


def read_atomic_inter(path: Path) -> Raw:
    """A RecBole ``.inter`` file: user ``user_id``; item ``item_id`` (or ``business_id``); time
    ``timestamp`` (or ``date``)."""
    df = read_csv(path, separator="\t", quote_char=None, encoding="utf8-lossy", infer_schema=False)
    df = df.rename({c: c.split(":")[0] for c in df.columns})
    item = "item_id" if "item_id" in df.columns else "business_id"
    time = "timestamp" if "timestamp" in df.columns else "date"
    require_columns(df, ["user_id", item, time], path)
    return _columns(df, "user_id", item, time, path)


def _columns(df: pl.DataFrame, user: str, item: str, time: str, path: Path) -> Raw:
    for c in (user, item, time):
        if df[c].null_count():
            row = int(df[c].is_null().arg_true()[0])
            raise DataError(f"raw file {path}: column '{c}' is empty at data row {row + 1}")
    t = df[time]
    if not t.dtype.is_numeric():
        t = t.cast(pl.Float64, strict=False)
        if t.null_count():
            row = int(t.is_null().arg_true()[0])
            raise DataError(f"raw file {path}: column '{time}' must be numeric; got {df[time][row]!r} at row {row + 1}")
    return (df[user].cast(pl.Utf8).to_numpy(), df[item].cast(pl.Utf8).to_numpy(), t.cast(pl.Float64).to_numpy())


def _read_json_lines(path: Path, user: str, item: str, time: str) -> Raw:
    opener = gzip.open if path.suffix == ".gz" else open
    us, its, ts = [], [], []
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"raw file {path}: line {n} is not JSON") from None
            try:
                us.append(rec[user])
                its.append(rec[item])
                ts.append(rec[time])
            except KeyError as exc:
                raise DataError(f"raw file {path}: line {n} has no field {exc}") from None
    if not us:
        raise DataError(f"raw file {path} has no records")
    if isinstance(ts[0], str):  # Yelp "2016-03-09 00:00:00"
        tt = pl.Series(ts).str.to_datetime(strict=False)
        if tt.null_count():
            raise DataError(f"raw file {path}: field '{time}' has an unparsable date")
        times = tt.dt.epoch("s").to_numpy().astype(np.float64)
    else:
        times = np.asarray(ts, dtype=np.float64)
    return np.asarray(us, dtype=object).astype(str), np.asarray(its, dtype=object).astype(str), times


def _find(raw: Path, layouts: list[str], name: str) -> list[Path]:
    for f in layouts:
        if (raw / f).is_file():
            return [raw / f]
    raise DataError(f"no {name} files in {raw}: expected one of {layouts}; "
                    f"download them (see docs/sequential.md) or pass --data-dir")


def _reader_for(path: Path) -> Raw:
    n = path.name
    if n.endswith(".inter"):
        return read_atomic_inter(path)
    if n == "u.data":
        df = read_csv(path, separator="\t", has_header=False, new_columns=["user", "item", "rating", "time"])
        return _columns(df, "user", "item", "time", path)
    if n == "ratings.dat":  # ML-1M: UserID::MovieID::Rating::Timestamp
        text = path.read_text(encoding="latin-1").replace("::", "\t")
        df = pl.read_csv(text.encode(), separator="\t", has_header=False,
                         new_columns=["user", "item", "rating", "time"])
        return _columns(df, "user", "item", "time", path)
    if n.startswith("ratings_") and n.endswith(".csv"):  # Amazon 2014 ratings-only: user,item,rating,time
        df = read_csv(path, has_header=False, new_columns=["user", "item", "rating", "time"])
        return _columns(df, "user", "item", "time", path)
    if n.startswith("reviews_"):  # Amazon 2014 5-core JSON lines
        return _read_json_lines(path, "reviewerID", "asin", "unixReviewTime")
    if n.startswith("yelp_academic_dataset_review"):
        return _read_json_lines(path, "user_id", "business_id", "date")
    raise DataError(f"don't know how to read {path}")


def _one_file(files: list[Path]) -> Raw:
    return _reader_for(files[0])


def _amazon(name: str, category: str, interval: Interval) -> SeqDatasetInfo:
    layouts = [f"reviews_{category}_5.json.gz", f"reviews_{category}_5.json", f"ratings_{category}.csv",
               f"Amazon_{category}.inter"]
    return SeqDatasetInfo(name, f"Amazon 2014 {category} (5-core reviews or ratings), RecBole filter {interval}",
                          lambda raw: _find(raw, layouts, name), _one_file, interval, interval, 50)


_register(SeqDatasetInfo("ml-100k", "MovieLens-100K ratings as sequences (no filtering, as RecBole's quick start)",
                         lambda raw: _find(raw, ["ml-100k.inter", "u.data"], "ml-100k"), _one_file, None, None, 50))
_register(SeqDatasetInfo("ml-1m", "MovieLens-1M ratings as sequences, [5,inf) filter, max length 200",
                         lambda raw: _find(raw, ["ml-1m.inter", "ratings.dat"], "ml-1m"), _one_file,
                         (5, float("inf")), (5, float("inf")), 200))
_register(_amazon("amazon-beauty", "Beauty", (5, float("inf"))))
_register(_amazon("amazon-sports", "Sports_and_Outdoors", (5, 200)))
_register(_amazon("amazon-games", "Video_Games", (5, float("inf"))))
_register(SeqDatasetInfo("yelp", "Yelp reviews as sequences, [5,100) filter",
                         lambda raw: _find(raw, ["yelp.inter", "yelp_academic_dataset_review.json",
                                                 "yelp_academic_dataset_review.json.gz"], "yelp"),
                         _one_file, (5, 100), (5, 100), 50))


# --------------------------------------------------------------------------- load + cache


def default_raw_dir(name: str) -> Path:
    """``$RECWISE_HOME/raw/<name>`` (for ml-100k, ``$RECWISE_ML100K`` when set)."""
    if name == "ml-100k" and os.environ.get("RECWISE_ML100K"):
        return Path(os.environ["RECWISE_ML100K"])
    return default_root() / "raw" / name


def read_interactions(name: str, data_dir: str | os.PathLike[str] | None = None) -> Raw:
    info = seq_dataset_info(name)
    raw = Path(data_dir) if data_dir is not None else default_raw_dir(name)
    if not raw.is_dir():
        raise DataError(f"no raw files for dataset '{name}': folder {raw} does not exist; pass --data-dir")
    return info.read(info.find_files(raw))


def _interval(v: Interval) -> list[float] | None:
    return None if v is None else [float(v[0]), float(v[1])]


def load_sequences(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    user_interval: Interval | str = "default",
    item_interval: Interval | str = "default",
    root: Path | None = None,
    use_cache: bool = True,
) -> tuple[Sequences, dict[str, object]]:
    """Read (or load from cache) dataset ``name`` as filtered, time-ordered sequences."""
    info = seq_dataset_info(name)
    ui = info.user_interval if user_interval == "default" else user_interval
    ii = info.item_interval if item_interval == "default" else item_interval
    raw = Path(data_dir) if data_dir is not None else default_raw_dir(name)
    if not raw.is_dir():
        raise DataError(f"no raw files for dataset '{name}': folder {raw} does not exist; pass --data-dir")
    files = info.find_files(raw)
    options = {"dataset": f"seq/{name}", "version": info.version, "user_interval": _interval(ui),  # type: ignore[arg-type]
               "item_interval": _interval(ii)}  # type: ignore[arg-type]
    key = cache_key(files, options)
    folder = (root or default_root()) / "prepared" / f"seq-{name}-{key}"
    if use_cache and (folder / "meta.json").exists():
        p = load_prepared(folder, mmap=False)
        seqs = Sequences(np.asarray(p.table.columns["item"]), np.asarray(p.splits["offsets"]),
                         int(p.meta["n_items"]))
        return seqs, p.meta
    user, item, time = info.read(files)
    seqs = build_sequences(user, item, time, user_interval=ui, item_interval=ii)  # type: ignore[arg-type]
    meta: dict[str, object] = {**options, "key": key, "raw_dir": str(raw), "n_users": seqs.n_users,
                               "n_items": seqs.n_items, "n_interactions": len(seqs), "raw_rows": len(user)}
    if use_cache:
        table = Table(Schema((Field("item", FieldKind.SEQUENCE, seqs.n_items + 1, "item ids, user after user"),)),
                      {"item": seqs.items})
        save_prepared(folder, Prepared(table, {"offsets": seqs.offsets}, meta))
    return seqs, meta
