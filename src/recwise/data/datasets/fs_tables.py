"""Datasets of the feature-selection task (ERASE, AltFS): every field label-encoded, one label.

ERASE (``data/preprocess.py``, ``utils/datasets.py``) turns every column into ids with a
LabelEncoder and feeds all fields as sparse; so do these loaders (ids in sorted order of the raw
values, vocabulary = number of values). Each field carries a human description
(``Field.description``) for the LLM stage of AltFS; :func:`field_summary` gives type, example
raw value and cardinality per field.

=========  =============================================================  ==========  =====================
dataset    fields                                                         label       split
=========  =============================================================  ==========  =====================
ml-100k    user_id, item_id, age, gender, occupation, zip, genres, year,  rating > 3  random 70/20/10
           hour, weekday (our choice of fields; label rule as ERASE ML-1M)
ml-1m      user_id, movie_id, genres, age, gender, occupation, title,     rating > 3  random 70/20/10
           timestamp, zip (ERASE's 9)
avazu      22: hour, C1, banner_pos, site_*, app_*, device_*, C14-C21     click       sequential 70/20/10
criteo     I1-I13 (ERASE: x > 2 -> int(log(x)^2), else int(x) - 2; NaN    label       sequential 70/20/10
           -> -999), C1-C26 (NaN -> '-999')
ali-ccp    ERASE's 23 sparse fields; dense D* dropped; purchase unused    click       fixed order, sequential
                                                                                      50/25/25 of train+val+test
kuairand   KuaiRand-1K: user, video and user-profile fields + tab (AltFS  is_click    random 70/20/10
           uses KuaiRand-Pure: same columns; all label-encoded)
=========  =============================================================  ==========  =====================

Splits are made once per dataset from ``split_seed`` (random ones) and cached with the table
(``<root>/prepared/fs-<dataset>-<key>/``), like the other tasks. ``max_rows`` keeps the first N
rows of the raw files (for Avazu/Criteo, whose full files hold 40M+ rows).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from recwise.data.cache import Prepared, cache_key, default_root, load_prepared, save_prepared
from recwise.data.datasets._base import binary_label, encode_ids, raw_dir_for, read_csv
from recwise.data.datasets.movielens import GENRES_100K, _find_1m, _find_100k, _read_dat
from recwise.data.schema import Field, FieldKind, Schema
from recwise.data.split import random_split
from recwise.data.table import Table
from recwise.errors import DataError
from recwise.registry import Registry

__all__ = ["FS_DATASETS", "FSDataset", "field_summary", "list_fs_datasets", "prepare_fs"]


@dataclass(frozen=True)
class FSDataset:
    name: str
    description: str
    find_files: Callable[[Path], list[Path]]
    read: Callable[[list[Path], int | None], tuple[pl.DataFrame, np.ndarray, dict[str, str]]]
    split: Literal["random", "sequential", "sequential-50-25-25"]
    raw_name: str = ""  # folder under <root>/raw (default: name)
    version: int = 1


FS_DATASETS: Registry[FSDataset] = Registry("selection dataset", hint="(`recwise data list` lists them)")


def _register(ds: FSDataset) -> None:
    FS_DATASETS.add(ds.name, ds)


def list_fs_datasets() -> list[str]:
    return FS_DATASETS.names()


# ------------------------------------------------------------------------------ assembling


def _table(path: Path, df: pl.DataFrame, label: np.ndarray, descriptions: dict[str, str]) -> tuple[Table, dict]:
    """Label-encode every column of ``df``; returns the table and per-field example raw values."""
    fields, columns, examples = [], {}, {}
    for name in df.columns:
        s = df[name]
        ids, vocab = encode_ids(s, path)
        fields.append(Field(name, FieldKind.SPARSE, vocab, descriptions.get(name, "")))
        columns[name] = ids
        examples[name] = [str(v) for v in s.head(3).to_list()]
    fields.append(Field("label", FieldKind.LABEL))
    columns["label"] = label.astype(np.float32)
    return Table(Schema(tuple(fields)), columns), examples


def _splits(n: int, kind: str, seed: int) -> dict[str, np.ndarray]:
    if kind == "random":
        return random_split(n, (0.7, 0.2, 0.1), seed)
    a, b = (int(n * 0.7), int(n * 0.9)) if kind == "sequential" else (int(n * 0.5), int(n * 0.75))
    return {"train": np.arange(a), "val": np.arange(a, b), "test": np.arange(b, n)}


def prepare_fs(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    split_seed: int = 2022,
    max_rows: int | None = None,
    root: Path | None = None,
    use_cache: bool = True,
) -> Prepared:
    """Read (or load from cache) feature-selection dataset ``name`` and its fixed split."""
    ds = FS_DATASETS.get(name)
    raw_dir = raw_dir_for(ds.raw_name or name, data_dir)
    if not raw_dir.is_dir():
        raise DataError(f"no raw files for dataset '{name}': folder {raw_dir} does not exist; pass --data-dir "
                        f"(docs/selection.md lists the files each dataset needs)")
    files = ds.find_files(raw_dir)
    options = {"dataset": f"fs-{name}", "version": ds.version, "split_seed": split_seed, "split": ds.split,
               "max_rows": max_rows}
    key = cache_key(files, options)
    folder = (root or default_root()) / "prepared" / f"fs-{name}-{key}"
    if use_cache and (folder / "meta.json").exists():
        return load_prepared(folder)
    df, label, descriptions = ds.read(files, max_rows)
    table, examples = _table(files[0], df, label, descriptions)
    splits = _splits(len(table), ds.split, split_seed)
    meta = {**options, "raw_dir": str(raw_dir), "rows": len(table), "key": key, "examples": examples,
            "source": [str(f) for f in files]}
    prepared = Prepared(table, splits, meta)
    if use_cache:
        save_prepared(folder, prepared)
        return load_prepared(folder)
    return prepared


def field_summary(prepared: Prepared) -> list[dict[str, Any]]:
    """Per feature field: name, description, type, example raw value, cardinality (for the LLM stage)."""
    examples = prepared.meta.get("examples", {})
    out = []
    for f in prepared.table.schema.fields:
        if f.kind not in (FieldKind.SPARSE, FieldKind.DENSE):
            continue
        ex = examples.get(f.name) or [str(np.asarray(prepared.table.columns[f.name])[0])]
        card = f.vocab_size if f.kind == FieldKind.SPARSE else int(np.unique(prepared.table.columns[f.name]).size)
        out.append({"name": f.name, "description": f.description, "type":
                    "categorical (label-encoded)" if f.kind == FieldKind.SPARSE else "numeric",
                    "example": ex[0], "cardinality": int(card)})
    return out


# ------------------------------------------------------------------------------ MovieLens

ML100K_DESCRIPTIONS = {
    "user_id": "user identifier",
    "item_id": "movie identifier",
    "age": "user age in years",
    "gender": "user gender (M/F)",
    "occupation": "user occupation (e.g. student, engineer, educator)",
    "zip": "user zip code (US postal code)",
    "genres": "the movie's genres, as one combination (e.g. Action|Comedy)",
    "year": "movie release year",
    "hour": "hour of day of the rating (0-23, UTC)",
    "weekday": "day of week of the rating (1 = Monday ... 7 = Sunday, UTC)",
}
ML100K_FIELDS = tuple(ML100K_DESCRIPTIONS)


def _time_parts(ts: pl.Series) -> tuple[pl.Series, pl.Series]:
    t = pl.from_epoch(ts.cast(pl.Int64), time_unit="s")
    return t.dt.hour().alias("hour"), t.dt.weekday().alias("weekday")


def _read_fs_100k(files: list[Path], max_rows: int | None) -> tuple[pl.DataFrame, np.ndarray, dict[str, str]]:
    if files[0].name == "u.data":
        inter = read_csv(files[0], separator="\t", has_header=False, n_rows=max_rows,
                         new_columns=["user_id", "item_id", "rating", "timestamp"])
        users = read_csv(files[1], separator="|", has_header=False,
                         new_columns=["user_id", "age", "gender", "occupation", "zip"], infer_schema=False)
        items = read_csv(files[2], separator="|", has_header=False, encoding="utf8-lossy", quote_char=None,
                         new_columns=["item_id", "title", "release", "video_release", "url", *GENRES_100K])
        flags = items.select(GENRES_100K).to_numpy().astype(bool)
        genres = ["|".join(g for g, on in zip(GENRES_100K, row) if on) or "unknown" for row in flags]
        year = items["release"].cast(pl.Utf8).str.slice(-4).fill_null("unknown")
        items = pl.DataFrame({"item_id": items["item_id"], "genres": genres, "year": year})
        users = users.with_columns(pl.col("user_id").cast(pl.Int64))
    else:
        inter = _atomic(files[0], {"user_id": "user_id", "item_id": "item_id", "rating": "rating",
                                   "timestamp": "timestamp"}, max_rows)
        users = _atomic(files[1], {"user_id": "user_id", "age": "age", "gender": "gender",
                                   "occupation": "occupation", "zip_code": "zip"})
        items = _atomic(files[2], {"item_id": "item_id", "release_year": "year", "class": "genres"})
        items = items.with_columns(genres=pl.col("genres").fill_null("unknown").str.replace_all(" ", "|"),
                                   year=pl.col("year").fill_null("unknown"))
        inter = inter.with_columns(pl.col("timestamp").cast(pl.Float64).cast(pl.Int64))
    df = inter.join(users, on="user_id", how="left").join(items, on="item_id", how="left")
    for col, what in (("age", "user"), ("genres", "item")):
        if df[col].null_count():
            row = int(df[col].is_null().arg_true()[0])
            raise DataError(f"raw file {files[0]}: row {row + 1} refers to a {what} missing from the {what} file")
    hour, weekday = _time_parts(df["timestamp"])
    df = df.with_columns(hour, weekday)
    label = binary_label(df["rating"], files[0], threshold=3)
    return df.select(ML100K_FIELDS), label, ML100K_DESCRIPTIONS


def _atomic(path: Path, rename: dict[str, str], max_rows: int | None = None) -> pl.DataFrame:
    df = read_csv(path, separator="\t", quote_char=None, encoding="utf8-lossy", infer_schema=False, n_rows=max_rows)
    df = df.rename({c: c.split(":")[0] for c in df.columns})
    missing = [c for c in rename if c not in df.columns]
    if missing:
        raise DataError(f"raw file {path} lacks column(s) {missing}; it has {df.columns}")
    df = df.select(list(rename)).rename(rename)
    for col in ("user_id", "item_id"):
        if col in df.columns:
            df = df.with_columns(pl.col(col).cast(pl.Int64, strict=False))
            if df[col].null_count():
                row = int(df[col].is_null().arg_true()[0])
                raise DataError(f"raw file {path}: column '{col}' must be an integer (data row {row + 1})")
    return df


_register(FSDataset("ml-100k", "MovieLens-100K, 10 fields (user, movie, demographics, genres, year, hour, weekday)",
                    _find_100k, _read_fs_100k, "random"))

ML1M_DESCRIPTIONS = {
    "user_id": "user identifier",
    "movie_id": "movie identifier",
    "genres": "the movie's genres, as one combination (e.g. Animation|Children's|Comedy)",
    "age": "user age group (1: under 18, 18: 18-24, 25: 25-34, 35: 35-44, 45: 45-49, 50: 50-55, 56: 56+)",
    "gender": "user gender (M/F)",
    "occupation": "user occupation code (0-20, e.g. 4 = college/grad student)",
    "title": "movie title with release year",
    "timestamp": "rating time in seconds since the epoch (each value its own category, as ERASE)",
    "zip": "user zip code (US postal code)",
}
ML1M_FIELDS = tuple(ML1M_DESCRIPTIONS)
ML1M_CSV = ("ml-1m.csv", "ml-1m_sample.csv")


def _find_fs_1m(raw: Path) -> list[Path]:
    for n in ML1M_CSV:
        if (raw / n).exists() and not (raw / "ratings.dat").exists():
            return [raw / n]
    return _find_1m(raw)


def _read_fs_1m(files: list[Path], max_rows: int | None) -> tuple[pl.DataFrame, np.ndarray, dict[str, str]]:
    if len(files) == 1:  # torch-rechub's merged csv (ERASE's source)
        df = read_csv(files[0], columns=["rating", *ML1M_FIELDS], infer_schema=False, n_rows=max_rows)
    else:
        inter = _read_dat(files[0], ["user_id", "movie_id", "rating", "timestamp"])
        if max_rows is not None:
            inter = inter.head(max_rows)
        users = _read_dat(files[1], ["user_id", "gender", "age", "occupation", "zip"])
        items = _read_dat(files[2], ["movie_id", "title", "genres"])
        df = inter.join(users, on="user_id", how="left").join(items, on="movie_id", how="left")
        if df["genres"].null_count() or df["age"].null_count():
            raise DataError(f"raw file {files[0]}: a rating refers to a user or movie missing from "
                            "users.dat/movies.dat")
    df = df.with_columns(pl.col("user_id", "movie_id", "age", "occupation", "timestamp").cast(pl.Int64, strict=False))
    label = binary_label(df["rating"], files[0], threshold=3)
    return df.select(ML1M_FIELDS), label, ML1M_DESCRIPTIONS


_register(FSDataset("ml-1m", "MovieLens-1M, ERASE's 9 fields", _find_fs_1m, _read_fs_1m, "random"))


# ------------------------------------------------------------------------------ Avazu

AVAZU_FIELDS = ("hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain",
                "app_category", "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
                "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21")
AVAZU_DESCRIPTIONS = {
    "hour": "impression time as YYMMDDHH (kept as one token, as ERASE)",
    "C1": "anonymised categorical variable",
    "banner_pos": "position of the banner on the page",
    "site_id": "site identifier", "site_domain": "site domain", "site_category": "site category",
    "app_id": "app identifier", "app_domain": "app domain", "app_category": "app category",
    "device_id": "device identifier", "device_ip": "device IP address (hashed)", "device_model": "device model",
    "device_type": "device type", "device_conn_type": "device connection type",
    **{f"C{i}": "anonymised categorical variable" for i in range(14, 22)},
}
AVAZU_KAGGLE = ("train.csv", "train", "train.gz", "train.csv.gz")
AVAZU_SPLIT = ("train.csv", "valid.csv", "test.csv")  # ERASE's pre-split copy
AVAZU_RECHUB = ("train_sample.csv", "valid_sample.csv", "test_sample.csv")


def _find_avazu(raw: Path) -> list[Path]:
    for names in (AVAZU_SPLIT, AVAZU_RECHUB):
        if all((raw / n).exists() for n in names):
            return [raw / n for n in names]
    for n in AVAZU_KAGGLE:
        if (raw / n).exists():
            return [raw / n]
    raise DataError(f"no Avazu files in {raw}: expected Kaggle's train(.csv) (id, click, hour, C1, ...), ERASE's "
                    "train.csv/valid.csv/test.csv, or torch-rechub's "
                    "train_sample.csv/valid_sample.csv/test_sample.csv")


def _read_avazu(files: list[Path], max_rows: int | None) -> tuple[pl.DataFrame, np.ndarray, dict[str, str]]:
    frames = []
    left = max_rows
    for p in files:
        if left is not None and left <= 0:
            break
        frames.append(read_csv(p, infer_schema=False, n_rows=left))
        left = None if left is None else left - frames[-1].height
    df = pl.concat(frames, how="vertical")
    if "click" in df.columns:
        missing = [c for c in AVAZU_FIELDS if c not in df.columns]
        if missing:
            raise DataError(f"raw file {files[0]} lacks Avazu column(s) {missing}")
        label = binary_label(df["click"], files[0])
        return df.select(AVAZU_FIELDS).fill_null("-1"), label, AVAZU_DESCRIPTIONS
    feats = [c for c in df.columns if c.startswith("feat_")]
    if "label" not in df.columns or not feats:
        raise DataError(f"raw file {files[0]}: expected Kaggle columns (click, hour, ...) or torch-rechub's "
                        f"(label, feat_1, ...); got {df.columns[:6]}")
    desc = {f: f"Avazu field {f} (torch-rechub encoding; original column not named in the file)" for f in feats}
    return df.select(feats).fill_null("-1"), binary_label(df["label"], files[0]), desc


_register(FSDataset("avazu", "Avazu (Kaggle CTR), ERASE's 22 fields", _find_avazu, _read_avazu, "sequential"))


# ------------------------------------------------------------------------------ Criteo

CRITEO_DENSE = tuple(f"I{i}" for i in range(1, 14))
CRITEO_SPARSE = tuple(f"C{i}" for i in range(1, 27))
CRITEO_DESCRIPTIONS = {
    **{f: f"anonymised integer feature {f} (mostly counts), discretised as ERASE: int(log(x)^2) for x > 2"
       for f in CRITEO_DENSE},
    **{f: f"anonymised categorical feature {f} (hashed)" for f in CRITEO_SPARSE},
}


def _find_criteo(raw: Path) -> list[Path]:
    for n in ("train.txt", "criteo.csv", "criteo_sample.csv", "train.csv"):
        if (raw / n).exists():
            return [raw / n]
    raise DataError(f"no Criteo files in {raw}: expected train.txt (Criteo Kaggle, tab-separated, no header) or "
                    f"criteo_sample.csv (torch-rechub: label, I1..I13, C1..C26)")


def _criteo_dense(s: pl.Series) -> pl.Series:
    """ERASE: NaN -> -999; x > 2 -> str(int(log(x) ** 2)); else str(int(x) - 2)."""
    x = s.cast(pl.Float64, strict=False).fill_null(-999.0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        big = np.log(np.where(x > 2, x, 3.0)) ** 2
    out = np.where(x > 2, np.trunc(big), np.trunc(x) - 2).astype(np.int64)
    return pl.Series(s.name, out.astype(str))


def _read_criteo(files: list[Path], max_rows: int | None) -> tuple[pl.DataFrame, np.ndarray, dict[str, str]]:
    path = files[0]
    if path.suffix == ".txt":
        df = read_csv(path, separator="\t", has_header=False, infer_schema=False, n_rows=max_rows,
                      new_columns=["label", *CRITEO_DENSE, *CRITEO_SPARSE])
    else:
        df = read_csv(path, infer_schema=False, n_rows=max_rows, columns=["label", *CRITEO_DENSE, *CRITEO_SPARSE])
    if df.width != 40:
        raise DataError(f"raw file {path}: expected 40 columns (label, 13 integer, 26 categorical); got {df.width}")
    label = binary_label(df["label"].cast(pl.Float64, strict=False), path)
    df = df.with_columns([_criteo_dense(df[c]) for c in CRITEO_DENSE]
                         + [pl.col(c).fill_null("-999") for c in CRITEO_SPARSE])
    return df.select(*CRITEO_DENSE, *CRITEO_SPARSE), label, CRITEO_DESCRIPTIONS


_register(FSDataset("criteo", "Criteo (Kaggle display ads), 39 fields", _find_criteo, _read_criteo, "sequential"))


# ------------------------------------------------------------------------------ Ali-CCP, KuaiRand


def _find_aliccp(raw: Path) -> list[Path]:
    from recwise.data.datasets import aliccp

    return aliccp._find(raw)


def _read_aliccp(files: list[Path], max_rows: int | None) -> tuple[pl.DataFrame, np.ndarray, dict[str, str]]:
    """ERASE's 23 sparse fields of torch-rechub's processed csvs (train, val, test concatenated)."""
    from recwise.data.datasets import aliccp

    if len(files) == 4:
        raw = aliccp._read_raw(files)  # the Tianchi files, processed as the MSR loader does
        cols = {f: raw.table.columns[f] for f in aliccp.SPARSE}
        return pl.DataFrame(cols), np.asarray(raw.table.columns["label"]), aliccp.DESCRIPTIONS
    frames, labels = [], []
    for p in files:
        df = read_csv(p, columns=("click", *aliccp.SPARSE), n_rows=max_rows)
        labels.append(binary_label(df["click"], p))
        frames.append(df.select(aliccp.SPARSE).with_columns(pl.all().cast(pl.Int64, strict=False)))
    df = pl.concat(frames, how="vertical")
    desc = {f: d.replace("; ids seen fewer than 10 times in train are 0", "") for f, d in aliccp.DESCRIPTIONS.items()}
    return df, np.concatenate(labels), desc


_register(FSDataset("ali-ccp", "Ali-CCP, ERASE's 23 sparse fields", _find_aliccp, _read_aliccp,
                    "sequential-50-25-25"))


def _find_kuairand(raw: Path) -> list[Path]:
    from recwise.data.datasets import kuairand

    return kuairand._find(raw)


def _read_kuairand(files: list[Path], max_rows: int | None) -> tuple[pl.DataFrame, np.ndarray, dict[str, str]]:
    from recwise.data.datasets import kuairand

    raw = kuairand.read_kuairand(files[0].parent, tabs=None, counts="dense")
    t = raw.table
    names = [*kuairand.SPARSE, *kuairand.DENSE]
    cols = {n: np.asarray(t.columns[n]) for n in names}
    cols["tab"] = np.asarray(t.columns["scenario"])
    df = pl.DataFrame(cols)
    if max_rows is not None:
        df = df.head(max_rows)
    label = np.asarray(t.columns["label"])[: df.height]
    desc = {**kuairand.DESCRIPTIONS, "tab": "the app tab (page) where the video was shown"}
    desc.update({n: desc[n].replace(", min-max scaled", "") for n in kuairand.DENSE})
    return df, label, desc


_register(FSDataset("kuairand", "KuaiRand-1K (as AltFS's KuaiRand: all fields label-encoded)", _find_kuairand,
                    _read_kuairand, "random", raw_name="kuairand-1k"))
