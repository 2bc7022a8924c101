"""KuaiRand-1K in Scenario-Wise Rec's multi-scenario setup: 5 scenarios by the ``tab`` field.

Rules (reference: Scenario-Wise Rec ``scripts/data/kuairand/load_data_1k.py`` and
``scripts/run_kuairand_ctr_multi_domain.py``):

* label: ``is_click`` (0/1);
* rows: the standard log ``log_standard_4_22_to_5_08_1k.csv`` inner-joined with
  ``user_features_1k.csv`` (on user_id) and ``video_features_basic_1k.csv`` (on video_id), with the
  script's fill values for missing user one-hot features and video fields;
* scenario: ``tab``; five tabs are kept and numbered 0..4 in ascending tab order (see below);
  ``tab`` itself is not an input feature;
* features: dense ``follow_user_num, fans_user_num, friend_user_num, register_days`` (min-max
  scaled real counts); sparse: every other column (user_id, video_id, user_active_degree,
  is_lowactive_period, is_live_streamer, is_video_author, the four ``*_range`` buckets,
  onehot_feat0-17, video_type, visible_status, server_width, server_height). Dropped:
  play_time_ms, duration_ms, profile_stay_time, comment_stay_time (they leak the click) and the
  video columns the script drops (upload_dt, upload_type, tag, video_duration, music_type,
  music_id, author_id).

Which tabs. The paper's draft says "the top five" tabs by count. The script first remaps every
column to first-appearance ids and then keeps *remapped* tab ids {1, 0, 4, 2, 6}, so the raw tab
values behind them depend on the row order of the full log and cannot be read off the code.
We therefore apply:

* to a ``kuairand.csv`` written by the current script (all columns are first-appearance ids):
  remapped tabs {0, 1, 2, 4, 6} -> 0..4, exactly the paper's rule;
* to raw-valued files (the three raw files, or a merged CSV with raw values such as the repo's
  ``kuairand_sample.csv``): raw tabs {0, 1, 2, 4, 6} -> 0..4, which is what the paper's run script
  does on its own shipped sample (that file holds raw values). ``read_kuairand(dir, tabs="top5")``
  picks the five most frequent raw tabs of the file instead (the draft's prose), and
  ``tabs=(...)`` any five values.

Bug fixed: the script remaps the four count features to ids before they are min-max scaled, so
the paper's "dense" values are arbitrary ids. We scale the real counts. ``counts="ids"``
reproduces the paper (first-appearance ids, then min-max). A remapped ``kuairand.csv`` carries ids
only; its real counts are recovered from the ``feature_mapping/*.json`` files the script writes
beside it, and without them reading it needs ``counts="ids"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

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

LOG = "log_standard_4_22_to_5_08_1k.csv"
USERS = "user_features_1k.csv"
VIDEOS = "video_features_basic_1k.csv"
PROCESSED = ("kuairand.csv", "kuairand_sample.csv")

LOG_COLUMNS = ("user_id", "video_id", "is_click", "tab", "play_time_ms", "duration_ms",
               "profile_stay_time", "comment_stay_time")
ONEHOT = tuple(f"onehot_feat{i}" for i in range(18))
USER_COLUMNS = ("user_id", "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
                "follow_user_num", "follow_user_num_range", "fans_user_num", "fans_user_num_range",
                "friend_user_num", "friend_user_num_range", "register_days", "register_days_range", *ONEHOT)
VIDEO_COLUMNS = ("video_id", "video_type", "visible_status", "server_width", "server_height")
# fill values of load_data_1k.py for missing user one-hot features and video fields
ONEHOT_FILL = {"onehot_feat0": 2, "onehot_feat1": 7, "onehot_feat2": 50, "onehot_feat3": 1471,
               "onehot_feat4": 15, "onehot_feat5": 34, "onehot_feat6": 3, "onehot_feat7": 118,
               "onehot_feat8": 454, "onehot_feat9": 7, "onehot_feat10": 5, "onehot_feat11": 5,
               **{f"onehot_feat{i}": 2 for i in range(12, 18)}}
VIDEO_FILL = {"visible_status": 2, "server_width": 0, "server_height": 0}

DENSE = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")
SPARSE = ("user_id", "video_id", "user_active_degree", "is_lowactive_period", "is_live_streamer",
          "is_video_author", "follow_user_num_range", "fans_user_num_range", "friend_user_num_range",
          "register_days_range", *ONEHOT, "video_type", "visible_status", "server_width", "server_height")
PROCESSED_COLUMNS = (*LOG_COLUMNS, *USER_COLUMNS[1:], *VIDEO_COLUMNS[1:])
TABS = (0, 1, 2, 4, 6)  # raw (or, in a remapped kuairand.csv, first-appearance) tab values -> 0..4

DESCRIPTIONS = {
    "user_id": "user identifier",
    "video_id": "short-video identifier",
    "user_active_degree": "user activity level (high_active, full_active, middle_active, low_active, ...)",
    "is_lowactive_period": "whether the user is in a low-activity period (0/1)",
    "is_live_streamer": "whether the user is a live streamer",
    "is_video_author": "whether the user has uploaded videos (0/1)",
    "follow_user_num": "number of accounts the user follows, min-max scaled",
    "follow_user_num_range": "bucket of the number of accounts the user follows",
    "fans_user_num": "number of the user's followers (fans), min-max scaled",
    "fans_user_num_range": "bucket of the number of the user's followers",
    "friend_user_num": "number of the user's mutual-follow friends, min-max scaled",
    "friend_user_num_range": "bucket of the number of the user's friends",
    "register_days": "days since the user registered, min-max scaled",
    "register_days_range": "bucket of days since the user registered",
    **{f"onehot_feat{i}": f"anonymised categorical user attribute {i} (encrypted one-hot feature)" for i in range(18)},
    "video_type": "video type (NORMAL, AD, UNKNOWN)",
    "visible_status": "video visibility status (2 when missing)",
    "server_width": "video frame width in pixels (0 when missing)",
    "server_height": "video frame height in pixels (0 when missing)",
}


# ------------------------------------------------------------------------------ finding files


def _find(raw: Path) -> list[Path]:
    for folder in (raw, raw / "data", raw / "KuaiRand-1K" / "data"):
        if (folder / LOG).exists():
            missing = [n for n in (USERS, VIDEOS) if not (folder / n).exists()]
            if missing:
                raise DataError(f"KuaiRand-1K in {folder}: {LOG} is there but {missing} missing")
            return [folder / LOG, folder / USERS, folder / VIDEOS]
    for name in PROCESSED:
        if (raw / name).exists():
            return [raw / name]
    csvs = sorted(p for p in raw.glob("*.csv") if p.name not in (LOG, USERS, VIDEOS))
    if len(csvs) == 1:
        return csvs
    found = f"; found {[p.name for p in csvs]}, which is ambiguous" if csvs else ""
    raise DataError(
        f"no KuaiRand-1K files in {raw}: expected {LOG}, {USERS} and {VIDEOS} (KuaiRand-1K/data/ of the "
        f"official archive), or one processed CSV (kuairand.csv from Scenario-Wise Rec's load_data_1k.py){found}; "
        f"run `recwise data download kuairand-1k`"
    )


# ------------------------------------------------------------------------------ reading


def _int_column(df: pl.DataFrame, col: str, path: Path) -> pl.DataFrame:
    s = df[col]
    missing = s.is_null() | s.is_nan() if s.dtype.is_float() else s.is_null()
    if missing.any():
        row = int(missing.arg_true()[0])
        raise DataError(f"raw file {path}: column '{col}' has a missing/NaN value (first at data row {row + 1})")
    cast = s.cast(pl.Int64, strict=False)
    bad = cast.is_null() | (s.cast(pl.Float64, strict=False) != cast.cast(pl.Float64))
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataError(f"raw file {path}: column '{col}' must hold integers; got {s[row]!r} at data row {row + 1}")
    return df.with_columns(cast.alias(col))


def _read_raw(files: list[Path]) -> pl.DataFrame:
    log_path, users_path, videos_path = files
    log = read_csv(log_path, columns=LOG_COLUMNS).select(LOG_COLUMNS)
    users = read_csv(users_path, columns=USER_COLUMNS).select(USER_COLUMNS)
    users = users.with_columns([
        pl.col(c).fill_null(v) if users[c].dtype.is_numeric() else pl.col(c).fill_null(str(v))
        for c, v in ONEHOT_FILL.items()
    ])
    videos = read_csv(videos_path, columns=VIDEO_COLUMNS).select(VIDEO_COLUMNS)
    videos = videos.with_columns([pl.col(c).fill_null(v) for c, v in VIDEO_FILL.items()])
    for df, path, cols in ((log, log_path, ("user_id", "video_id")), (users, users_path, ("user_id",)),
                           (videos, videos_path, ("video_id",))):
        for c in cols:
            _int_column(df, c, path)
    log = log.with_columns(pl.col("user_id", "video_id").cast(pl.Int64))
    users = users.with_columns(pl.col("user_id").cast(pl.Int64))
    videos = videos.with_columns(pl.col("video_id").cast(pl.Int64))
    df = log.join(users, on="user_id", how="inner").join(videos, on="video_id", how="inner")
    if df.height == 0:
        raise DataError(f"raw file {log_path}: no row joins {USERS} (on user_id) and {VIDEOS} (on video_id)")
    return df


def _is_remapped(df: pl.DataFrame) -> bool:
    """True when every feature column holds ids 0..n-1, as load_data_1k.py's kuairand.csv does."""
    for col in ("tab", "server_width", *DENSE):
        s = df[col].cast(pl.Float64, strict=False)
        if s.null_count() or s.min() != 0 or s.max() != s.n_unique() - 1:
            return False
    return True


def _decode_counts(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Map the remapped count ids back to real counts with the script's feature_mapping/*.json."""
    folder = path.parent / "feature_mapping"
    columns = []
    for col in DENSE:
        mapping_file = folder / f"{col}.json"
        if not mapping_file.is_file():
            raise DataError(
                f"raw file {path}: column '{col}' holds first-appearance ids (written by load_data_1k.py), not "
                f"counts, and {mapping_file} is missing to decode them; put the script's feature_mapping/ folder "
                f"beside the CSV, use the raw KuaiRand-1K files, or read with counts='ids' for the paper's behaviour"
            )
        try:
            raw_to_id = json.loads(mapping_file.read_text(encoding="utf-8"))
            id_to_raw = {int(i): float(v) for v, i in raw_to_id.items()}
        except (ValueError, AttributeError) as exc:
            raise DataError(f"raw file {mapping_file} is not a JSON object of value -> id ({exc})") from None
        ids = _int_column(df, col, path)[col]
        unknown = ~ids.is_in(list(id_to_raw))
        if unknown.any():
            row = int(unknown.arg_true()[0])
            raise DataError(f"raw file {path}: column '{col}' id {ids[row]} at data row {row + 1} "
                            f"is not in {mapping_file}")
        columns.append(ids.replace_strict(id_to_raw, return_dtype=pl.Float64).alias(col))
    return df.with_columns(columns)


def _first_appearance_ids(df: pl.DataFrame, col: str) -> pl.Series:
    values = df[col].unique(maintain_order=True)
    return df[col].replace_strict(values, pl.Series(np.arange(len(values))), return_dtype=pl.Float64)


def read_kuairand(
    raw_dir: Path,
    *,
    tabs: Sequence[int] | Literal["top5"] | None = None,
    counts: Literal["dense", "ids"] = "dense",
) -> RawData:
    """Read KuaiRand-1K from ``raw_dir`` (raw files or one processed CSV).

    Parameters
    ----------
    tabs : five tab values, ``"top5"`` or None (default: {0, 1, 2, 4, 6}, see the module docstring).
        Scenario ``i`` is the ``i``-th smallest of the chosen tabs; rows of other tabs are dropped.
    counts : ``"dense"`` (default) scales the real counts; ``"ids"`` reproduces the paper's bug
        (first-appearance ids, then min-max).
    """
    if counts not in ("dense", "ids"):
        raise ConfigError(f"option 'counts' must be 'dense' or 'ids'; got {counts!r}")
    files = _find(Path(raw_dir))
    path = files[0]
    if len(files) == 3:
        df, remapped = _read_raw(files), False
    else:
        df = read_csv(path, columns=PROCESSED_COLUMNS)
        remapped = _is_remapped(df)
    label_column = binary_label(df["is_click"], path)  # validates before any row is dropped
    df = _int_column(df, "tab", path).with_columns(is_click=pl.Series(label_column))

    chosen: tuple[int, ...]
    if tabs is None:
        chosen = TABS
    elif tabs == "top5":
        top = df.group_by("tab").len().sort(["len", "tab"], descending=[True, False])["tab"].to_list()
        if len(top) < 5:
            raise DataError(f"raw file {path}: column 'tab' has only {len(top)} distinct values {sorted(top)}; "
                            f"tabs='top5' needs five; pass tabs=(...) explicitly")
        chosen = tuple(top[:5])
    else:
        chosen = tuple(int(t) for t in tabs)
        if len(set(chosen)) != 5:
            raise ConfigError(f"option 'tabs' must be five distinct tab values; got {tabs!r}")
    mapping = {t: i for i, t in enumerate(sorted(chosen))}
    df = df.filter(pl.col("tab").is_in(list(mapping)))
    if df.height == 0:
        raise DataError(f"raw file {path}: no row has a tab in {sorted(mapping)} (column 'tab')")

    if counts == "ids":
        df = df.with_columns([_first_appearance_ids(df, c).alias(c) for c in DENSE])
    elif remapped:
        df = _decode_counts(df, path)
    scenario = scenario_from_map(df["tab"], mapping, path)
    table = build_table(path, df, sparse=SPARSE, dense=DENSE, label=df["is_click"].to_numpy(), scenario=scenario,
                        n_scenarios=5, descriptions=DESCRIPTIONS)
    kind = "first-appearance tab id" if remapped else "tab"
    return RawData(table, meta={
        "source": str(path),
        "layout": "raw" if len(files) == 3 else ("processed-remapped" if remapped else "processed"),
        "scenario_names": [f"{kind} {t}" for t in sorted(mapping)],
        "counts": counts,
    })


def _read(raw_dir: Path) -> RawData:
    return read_kuairand(raw_dir)


register_dataset(DatasetInfo(
    name="kuairand-1k",
    description="KuaiRand-1K: 11M short-video impressions of 1,000 Kuaishou users; 5 scenarios (tabs); label is_click",
    read=_read,
    find_files=_find,
    download=Download(
        files={"https://zenodo.org/records/10439422/files/KuaiRand-1K.tar.gz": ""},
        archive_members=(LOG, USERS, VIDEOS),
    ),
    scenarios=tuple(f"tab {t}" for t in TABS),
))
