"""MovieLens-100K and MovieLens-1M in Scenario-Wise Rec's multi-scenario setup.

Rules (reference: Scenario-Wise Rec ``scripts/run_movielens_rank_multidomain.py``):

* label: ``rating > 3``;
* scenario: age bucket {1, 18} -> 0, {25} -> 1, {35, 45, 50, 56} -> 2. ML-100K stores raw ages,
  which are first mapped to the ML-1M buckets (<18 -> 1, 18-24 -> 18, 25-34 -> 25, 35-44 -> 35,
  45-49 -> 45, 50-55 -> 50, 56+ -> 56);
* features: sparse ``user_id, movie_id, gender, occupation, zip, cate_id`` (first genre),
  dense ``age`` (the bucket code, min-max scaled). Title and timestamp are dropped.

Accepted layouts: GroupLens (``u.data``/``u.user``/``u.item``; ``ratings.dat``/``users.dat``/
``movies.dat``), RecBole atomic (``ml-100k.inter``/``.user``/``.item``) and, for ML-1M, the
merged ``ml-1m.csv`` that Scenario-Wise Rec distributes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl

from recwise.data.datasets._base import (
    DatasetInfo,
    Download,
    RawData,
    binary_label,
    build_table,
    read_csv,
    register_dataset,
    scenario_from_map,
)
from recwise.errors import DataError

AGE_GROUP = {1: 0, 18: 0, 25: 1, 35: 2, 45: 2, 50: 2, 56: 2}
GENRES_100K = (
    "unknown Action Adventure Animation Children's Comedy Crime Documentary Drama Fantasy "
    "Film-Noir Horror Musical Mystery Romance Sci-Fi Thriller War Western"
).split()
SPARSE = ("user_id", "movie_id", "gender", "occupation", "zip", "cate_id")
DENSE = ("age",)
DESCRIPTIONS = {
    "user_id": "user identifier",
    "movie_id": "movie identifier",
    "gender": "user gender (M/F)",
    "occupation": "user occupation",
    "zip": "user zip code",
    "cate_id": "first genre of the movie",
    "age": "user age bucket (ML-1M codes), min-max scaled",
}
SCENARIOS = ("age<25", "age 25-34", "age>=35")


def age_bucket(age: np.ndarray) -> np.ndarray:
    """Raw age in years -> ML-1M age code."""
    edges = np.array([18, 25, 35, 45, 50, 56])
    codes = np.array([1, 18, 25, 35, 45, 50, 56])
    return codes[np.searchsorted(edges, age, side="right")]


def _finish(path: Path, df: pl.DataFrame) -> RawData:
    """df has user_id, movie_id, rating, gender, age (bucket code), occupation, zip, cate_id."""
    label = binary_label(df["rating"], path, threshold=3)
    scenario = scenario_from_map(df["age"], AGE_GROUP, path)
    table = build_table(path, df, sparse=SPARSE, dense=DENSE, label=label, scenario=scenario,
                        n_scenarios=3, descriptions=DESCRIPTIONS)
    return RawData(table, meta={"source": str(path)})


def _numeric_col(df: pl.DataFrame, col: str, path: Path) -> pl.DataFrame:
    try:
        return df.with_columns(pl.col(col).cast(pl.Int64, strict=True))
    except pl.exceptions.PolarsError:
        bad = df[col].cast(pl.Int64, strict=False).is_null()
        row = int(bad.arg_true()[0])
        raise DataError(f"raw file {path}: column '{col}' must be an integer; "
                        f"got {df[col][row]!r} at row {row + 1}") from None


# ------------------------------------------------------------------------------------ ML-100K


def _find_100k(raw: Path) -> list[Path]:
    for names in (("u.data", "u.user", "u.item"), ("ml-100k.inter", "ml-100k.user", "ml-100k.item")):
        if (raw / names[0]).exists():
            missing = [n for n in names if not (raw / n).exists()]
            if missing:
                raise DataError(f"MovieLens-100K in {raw}: {names[0]} is there but {missing} missing")
            return [raw / n for n in names]
    raise DataError(
        f"no MovieLens-100K files in {raw}: expected u.data/u.user/u.item (GroupLens) or "
        f"ml-100k.inter/.user/.item (RecBole atomic); run `recwise data download ml-100k`"
    )


def _read_100k(raw: Path) -> RawData:
    files = _find_100k(raw)
    if files[0].name == "u.data":
        inter = read_csv(files[0], separator="\t", has_header=False,
                         new_columns=["user_id", "movie_id", "rating", "timestamp"])
        users = read_csv(files[1], separator="|", has_header=False,
                         new_columns=["user_id", "age", "gender", "occupation", "zip"])
        items = read_csv(files[2], separator="|", has_header=False, encoding="utf8-lossy", quote_char=None,
                         new_columns=["movie_id", "title", "release", "video_release", "url", *GENRES_100K])
        flags = items.select(GENRES_100K).to_numpy()
        first = np.where(flags.any(axis=1), flags.argmax(axis=1), 0)
        items = items.select("movie_id").with_columns(cate_id=pl.Series(np.array(GENRES_100K)[first]))
    else:
        inter = _atomic(files[0], {"user_id": "user_id", "item_id": "movie_id", "rating": "rating"})
        users = _atomic(files[1], {"user_id": "user_id", "age": "age", "gender": "gender",
                                   "occupation": "occupation", "zip_code": "zip"})
        items = _atomic(files[2], {"item_id": "movie_id", "class": "genres"})
        items = items.with_columns(cate_id=pl.col("genres").fill_null("unknown").str.split(" ").list.first()).select(
            "movie_id", "cate_id")
        for df, path, cols in ((inter, files[0], ("user_id", "movie_id")), (users, files[1], ("user_id",)),
                               (items, files[2], ("movie_id",))):
            for c in cols:
                _numeric_col(df, c, path)
        inter = inter.with_columns(pl.col("user_id", "movie_id").cast(pl.Int64, strict=False))
        users = users.with_columns(pl.col("user_id").cast(pl.Int64, strict=False))
        items = items.with_columns(pl.col("movie_id").cast(pl.Int64, strict=False))
    users = _numeric_col(users, "age", files[1])
    users = users.with_columns(age=pl.Series(age_bucket(users["age"].to_numpy())))
    return _join(files[0], inter, users, items)


def _atomic(path: Path, rename: dict[str, str]) -> pl.DataFrame:
    """Read a RecBole atomic file (tab-separated, header ``name:type``) and keep/rename columns."""
    df = read_csv(path, separator="\t", quote_char=None, encoding="utf8-lossy", infer_schema=False)
    df = df.rename({c: c.split(":")[0] for c in df.columns})
    from recwise.data.datasets._base import require_columns

    require_columns(df, list(rename), path)
    return df.select(list(rename)).rename(rename)


def _join(path: Path, inter: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame) -> RawData:
    df = inter.join(users, on="user_id", how="left").join(items, on="movie_id", how="left")
    for col, what in (("age", "user"), ("cate_id", "item")):
        if df[col].null_count():
            row = int(df[col].is_null().arg_true()[0])
            raise DataError(f"raw file {path}: row {row + 1} refers to a {what} missing from the {what} file")
    return _finish(path, df)


register_dataset(DatasetInfo(
    name="ml-100k",
    description="MovieLens-100K: 100k ratings, 943 users, 1,682 movies; 3 age scenarios",
    read=_read_100k,
    find_files=_find_100k,
    download=Download(
        files={"https://files.grouplens.org/datasets/movielens/ml-100k.zip": ""},
        archive_members=("u.data", "u.user", "u.item"),
    ),
    scenarios=SCENARIOS,
))


# ------------------------------------------------------------------------------------- ML-1M


def _find_1m(raw: Path) -> list[Path]:
    if (raw / "ratings.dat").exists():
        names = ["ratings.dat", "users.dat", "movies.dat"]
        missing = [n for n in names if not (raw / n).exists()]
        if missing:
            raise DataError(f"MovieLens-1M in {raw}: ratings.dat is there but {missing} missing")
        return [raw / n for n in names]
    if (raw / "ml-1m.csv").exists():
        return [raw / "ml-1m.csv"]
    raise DataError(
        f"no MovieLens-1M files in {raw}: expected ratings.dat/users.dat/movies.dat (GroupLens) or "
        f"ml-1m.csv (Scenario-Wise Rec's merged file); run `recwise data download ml-1m`"
    )


def _read_dat(path: Path, names: list[str]) -> pl.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"raw file {path} is missing or empty")
    text = path.read_bytes().decode("latin-1").replace("::", "\t")
    df = pl.read_csv(io.StringIO(text), separator="\t", has_header=False, new_columns=names, quote_char=None,
                     infer_schema=False)
    if df.width != len(names):
        raise DataError(f"raw file {path}: expected {len(names)} '::'-separated columns; got {df.width}")
    return df


def _read_1m(raw: Path) -> RawData:
    files = _find_1m(raw)
    if len(files) == 1:
        df = read_csv(files[0],
                      columns=["user_id", "movie_id", "rating", "gender", "age", "occupation", "zip", "genres"])
        df = df.with_columns(cate_id=pl.col("genres").cast(pl.Utf8).str.split("|").list.first())
        df = _numeric_col(df, "age", files[0])
        return _finish(files[0], df)
    inter = _read_dat(files[0], ["user_id", "movie_id", "rating", "timestamp"])
    users = _read_dat(files[1], ["user_id", "gender", "age", "occupation", "zip"])
    items = _read_dat(files[2], ["movie_id", "title", "genres"])
    items = items.with_columns(cate_id=pl.col("genres").str.split("|").list.first()).select("movie_id", "cate_id")
    users = _numeric_col(users, "age", files[1])
    return _join(files[0], inter, users, items)


register_dataset(DatasetInfo(
    name="ml-1m",
    description="MovieLens-1M: 1M ratings, 6,040 users, 3,706 movies; 3 age scenarios",
    read=_read_1m,
    find_files=_find_1m,
    download=Download(
        files={"https://files.grouplens.org/datasets/movielens/ml-1m.zip": ""},
        archive_members=("ratings.dat", "users.dat", "movies.dat"),
    ),
    scenarios=SCENARIOS,
))
