"""Douban (book / music / movie reviews) in Scenario-Wise Rec's setup: 3 scenarios by domain.

Rules (reference: Scenario-Wise Rec ``scripts/data/douban/data_process.py`` and
``scripts/run_douban_rank_multi_domain.py``):

* rows: the three review files concatenated, item ids offset per domain (movie ids shifted past
  the largest book id, music ids past the largest shifted movie id), left-joined with the users
  file for ``living_place`` and ``join_time``;
* label: ``rating > 3``;
* scenario: book 0, **music 1, movie 2** (see below);
* features: sparse ``user_id, item_id, living_place, time_bin``. ``time_bin`` is the month of
  ``join_time`` (bins of ``pd.cut`` over month ends 2005-03-31 .. 2018-03-31, so 2005-04 -> 0 and
  2018-03 -> 155). A missing living place or a join time outside that range is its own category
  ("unknown"), as the scripts' LabelEncoder treats NaN. No dense features.

Domain order. ``data_process.py`` writes ``domain_id`` book 0, movie 1, music 2, but the run script
that produced the paper's numbers maps the ``domain`` strings book 0, music 1, movie 2. We follow
the run script: its order is the one behind every reported per-domain result, and the README's
domain sizes (D0 227k, D1 180k, D2 1.28M) match it (movies are the largest domain). The other order is
``read_douban(dir, order=PROCESS_SCRIPT_ORDER)``.

Accepted layouts: the Kaggle files ``users_cleaned.txt``, ``bookreviews_cleaned.txt``,
``moviereviews_cleaned.txt``, ``musicreviews_cleaned.txt`` (tab-separated, with header; directly
in the folder or in its ``douban_dataset(text information)/`` subfolder), or a processed
``douban.csv`` (rating already 0/1, and a ``domain`` column of book/music/movie or data_process.py's
``domain_id``) such as the repo's ``douban_sample.csv``.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from recwise.errors import ConfigError, DataError

RUN_SCRIPT_ORDER = ("book", "music", "movie")  # default: the order behind the paper's numbers
PROCESS_SCRIPT_ORDER = ("book", "movie", "music")  # data_process.py's domain_id
DOMAINS = ("book", "movie", "music")  # order of concatenation and item-id offsets in data_process.py
SUBFOLDER = "douban_dataset(text information)"
USERS = "users_cleaned.txt"
PROCESSED = ("douban.csv", "douban_sample.csv")
SPARSE = ("user_id", "item_id", "living_place", "time_bin")
UNKNOWN = "unknown"
DESCRIPTIONS = {
    "user_id": "Douban user id",
    "item_id": "Douban item id (book, movie or music; ids offset per domain so they never collide)",
    "living_place": "city or region the user lives in, as typed on the profile ('unknown' if missing)",
    "time_bin": "month the user joined Douban, 0 = 2005-04 ... 155 = 2018-03 ('unknown' if missing or outside)",
}
MANUAL = (
    "Douban needs a Kaggle login: download "
    "https://www.kaggle.com/datasets/fengzhujoey/douban-datasetratingreviewside-information "
    "(Download button, or `kaggle datasets download -d fengzhujoey/douban-datasetratingreviewside-information`), "
    "unzip it, and put users_cleaned.txt, bookreviews_cleaned.txt, moviereviews_cleaned.txt and "
    "musicreviews_cleaned.txt (found in its 'douban_dataset(text information)' folder) into {raw_dir}. "
    "Alternatively put a processed douban.csv from Scenario-Wise Rec there."
)


def _review_file(domain: str) -> str:
    return f"{domain}reviews_cleaned.txt"


def _find(raw: Path) -> list[Path]:
    names = [USERS, *(_review_file(d) for d in DOMAINS)]
    for folder in (raw, raw / SUBFOLDER):
        if any((folder / n).exists() for n in names):
            missing = [n for n in names if not (folder / n).exists()]
            if missing:
                raise DataError(f"Douban in {folder}: {missing} missing; need {names}")
            return [folder / n for n in names]
    for name in PROCESSED:
        if (raw / name).exists():
            return [raw / name]
    raise DataError(f"no Douban files in {raw}: expected {names} or douban.csv; {MANUAL.format(raw_dir=raw)}")


def time_bin(join_time: pl.Series) -> pl.Series:
    """Month bin of a join date as the script's ``pd.cut`` over month ends 2005-03-31..2018-03-31; null outside."""
    date = pl.col("t").cast(pl.Utf8).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    bins = (date.dt.year().cast(pl.Int64) - 2005) * 12 + date.dt.month().cast(pl.Int64) - 4
    frame = pl.DataFrame({"t": join_time}).select(pl.when(bins.is_between(0, 155)).then(bins).alias("time_bin"))
    return frame["time_bin"]


def _with_unknown(df: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    return df.with_columns([pl.col(c).cast(pl.Utf8).fill_null(UNKNOWN) for c in columns])


def _read_raw(files: list[Path]) -> tuple[pl.DataFrame, np.ndarray, list[str], Path]:
    users_path, *review_paths = files
    users = read_csv(users_path, separator="\t", columns=["UID", "living_place", "join_time"], infer_schema=False)
    users = users.select(pl.col("UID").alias("user_id"), "living_place", "join_time").unique("user_id", keep="first")
    frames, labels, offset = [], [], 0
    for domain, path in zip(DOMAINS, review_paths):
        item = f"{domain}_id"
        df = read_csv(path, separator="\t", columns=["user_id", item, "rating"], infer_schema=False)
        for col in ("user_id", item):
            ids = df[col].cast(pl.Int64, strict=False)
            bad = ids.is_null()
            if bad.any():
                row = int(bad.arg_true()[0])
                raise DataError(f"raw file {path}: column '{col}' must be an integer id; got {df[col][row]!r} "
                                f"at data row {row + 1}")
            df = df.with_columns(ids.alias(col))
        labels.append(binary_label(df["rating"], path, threshold=3))
        df = df.select("user_id", (pl.col(item) + offset).alias("item_id"), pl.lit(domain).alias("domain"))
        offset = int(df["item_id"].max())  # type: ignore[arg-type]  # an integer column; the next domain's ids start past this one's largest
        frames.append(df)
    df = pl.concat(frames).with_columns(pl.col("user_id").cast(pl.Utf8))
    df = df.join(users, on="user_id", how="left", maintain_order="left")
    df = df.with_columns(time_bin(df["join_time"]))
    return df, np.concatenate(labels), list(df["domain"]), review_paths[0]


def read_douban(raw_dir: Path, *, order: Sequence[str] = RUN_SCRIPT_ORDER) -> RawData:
    """Read Douban from ``raw_dir``; ``order`` lists the domains of scenarios 0, 1, 2."""
    if sorted(order) != sorted(DOMAINS):
        raise ConfigError(f"option 'order' must be a permutation of {list(DOMAINS)}; got {list(order)}")
    files = _find(Path(raw_dir))
    mapping = {d: i for i, d in enumerate(order)}
    if len(files) > 1:
        df, label, _, path = _read_raw(files)
        scenario = scenario_from_map(df["domain"], mapping, path)
    else:
        path = files[0]
        df = read_csv(path, columns=["user_id", "item_id", "rating", "living_place"])
        if "domain" in df.columns:
            scenario = scenario_from_map(df["domain"], mapping, path)
        elif "domain_id" in df.columns:  # data_process.py's own column: book 0, movie 1, music 2
            by_id = {i: mapping[d] for i, d in enumerate(PROCESS_SCRIPT_ORDER)}
            scenario = scenario_from_map(df["domain_id"], by_id, path)
        else:
            raise DataError(f"raw file {path} lacks column 'domain' (book/music/movie) or 'domain_id'; "
                            f"it has {df.columns}")
        label = binary_label(df["rating"], path)
        if "time_bin" not in df.columns:
            if "join_time" not in df.columns:
                raise DataError(f"raw file {path} lacks column 'time_bin' (or 'join_time' to compute it)")
            df = df.with_columns(time_bin(df["join_time"]))
        df = df.with_columns(pl.col("time_bin").cast(pl.Float64, strict=False).cast(pl.Int64, strict=False))
    df = _with_unknown(df, ("living_place", "time_bin"))
    table = build_table(path, df, sparse=SPARSE, dense=(), label=label, scenario=scenario, n_scenarios=3,
                        descriptions=DESCRIPTIONS)
    return RawData(table, meta={"source": [str(p) for p in files], "scenario_names": list(order)})


def _read(raw_dir: Path) -> RawData:
    return read_douban(raw_dir)


register_dataset(DatasetInfo(
    name="douban",
    description="Douban: 1.7M book, music and movie ratings of 2.7k users; 3 scenarios (book, music, movie); "
                "label rating>3",
    read=_read,
    find_files=_find,
    download=Download(manual=MANUAL),
    scenarios=RUN_SCRIPT_ORDER,
))
