"""Ali-CCP (Alibaba Click and Conversion Prediction) in Scenario-Wise Rec's setup: 3 scenarios by field 301.

Rules (reference: Scenario-Wise Rec ``scripts/data/ali-ccp/preprocess_ali_ccp.py``, which is
near-identical to torch-rechub's, and ``scripts/run_ali_ccp_ctr_ranking_multi_domain.py``):

* label: ``click``; ``purchase`` is unused except that rows with click=0 and purchase=1 are dropped;
* scenario: field ``301`` (display position) 1, 2, 3 -> 0, 1, 2; any other value is a DataError.
  ``301`` also stays an input feature, as in the scripts;
* features: 23 sparse fields (101, 121, 122, 124-129, 205, 206, 207, 210, 216, 508, 509, 702, 853,
  301, 109_14, 110_14, 127_14, 150_14) and 8 dense ones, the values carried by fields 109_14,
  110_14, 127_14, 150_14, 508, 509, 702 and 853 (columns ``D109_14`` ... ``D853``, min-max scaled
  over all rows);
* split: fixed. Train is the official train file; the official test file is cut 50/50 into val
  and test with ``sklearn.model_selection.train_test_split(test_size=0.5, random_state=2022)``.

Accepted layouts: the processed ``ali_ccp_{train,val,test}.csv`` (or ``*_sample.csv``) the
preprocess script writes, or the raw Tianchi files ``sample_skeleton_{train,test}.csv`` and
``common_features_{train,test}.csv``. Raw files go through the script's steps in memory:
per-sample features are merged with their ``common_feature_index`` row (common features win;
of a field repeated in one row the last value wins), a missing field reads as 0, and sparse ids
seen fewer than 10 times in train map to 0 while the others are numbered 1.. in order of first
appearance in train (so ``301`` gets the script's 1, 2, 3). Nothing is written outside the
prepared-data cache.
"""

from __future__ import annotations

import re
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
from recwise.data.table import Table
from recwise.errors import DataError

SPARSE = ("101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "210", "216",
          "508", "509", "702", "853", "301", "109_14", "110_14", "127_14", "150_14")
DENSE_FIELDS = ("109_14", "110_14", "127_14", "150_14", "508", "509", "702", "853")
DENSE = tuple("D" + f for f in DENSE_FIELDS)
SCENARIO = {1: 0, 2: 1, 3: 2}
MIN_COUNT = 10
SPLITS = ("train", "val", "test")

_FIELD_MEANING = {
    "101": "user id", "121": "user micro-group id", "122": "user cms group id", "124": "user gender",
    "125": "user age bucket", "126": "user consumption level 1", "127": "user consumption level 2",
    "128": "user occupation (is college student)", "129": "user geography level",
    "205": "item id", "206": "item category id", "207": "item shop id", "210": "item intention node id",
    "216": "item brand id", "508": "user-item category interaction (category id x user category behaviour)",
    "509": "user-item shop interaction", "702": "user-item brand interaction",
    "853": "user-item intention node interaction",
    "301": "display position of the ad (scenario field, also an input feature)",
    "109_14": "category ids the user interacted with in the last 14 days",
    "110_14": "shop ids the user interacted with in the last 14 days",
    "127_14": "brand ids the user interacted with in the last 14 days",
    "150_14": "intention node ids the user interacted with in the last 14 days",
}
DESCRIPTIONS = {
    **{f: f"Ali-CCP field {f}: {m}; ids seen fewer than 10 times in train are 0" for f, m in _FIELD_MEANING.items()},
    **{"D" + f: f"Ali-CCP field {f}: its numeric value (e.g. a behaviour count weight), min-max scaled"
       for f in DENSE_FIELDS},
}

MANUAL = (
    "Ali-CCP needs a Tianchi (Alibaba Cloud) login: open https://tianchi.aliyun.com/dataset/408, sign in, "
    "download sample_train.tar.gz and sample_test.tar.gz, extract them, and put sample_skeleton_train.csv, "
    "common_features_train.csv, sample_skeleton_test.csv and common_features_test.csv into {raw_dir} "
    "(about 40 GB extracted). Alternatively put the processed ali_ccp_train.csv, ali_ccp_val.csv and "
    "ali_ccp_test.csv written by Scenario-Wise Rec's scripts/data/ali-ccp/preprocess_ali_ccp.py there."
)

RAW = ("sample_skeleton_train.csv", "common_features_train.csv", "sample_skeleton_test.csv", "common_features_test.csv")


def _find(raw: Path) -> list[Path]:
    if any((raw / n).exists() for n in RAW):
        missing = [n for n in RAW if not (raw / n).exists()]
        if missing:
            raise DataError(f"Ali-CCP raw files in {raw}: {missing} missing; all four of {list(RAW)} are needed")
        return [raw / n for n in RAW]
    for pattern in ("ali_ccp_{}.csv", "ali_ccp_{}_sample.csv"):
        names = [pattern.format(s) for s in SPLITS]
        if any((raw / n).exists() for n in names):
            missing = [n for n in names if not (raw / n).exists()]
            if missing:
                raise DataError(f"Ali-CCP processed files in {raw}: {missing} missing; need {names}")
            return [raw / n for n in names]
    raise DataError(
        f"no Ali-CCP files in {raw}: expected the raw Tianchi files {list(RAW)} or the processed "
        f"ali_ccp_train.csv/ali_ccp_val.csv/ali_ccp_test.csv; {MANUAL.format(raw_dir=raw)}"
    )


def _check_present(df: pl.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    for col in columns:
        s = df[col]
        bad = s.is_null() | (s.is_nan() if s.dtype.is_float() else False)
        if bad.any():
            row = int(bad.arg_true()[0])
            raise DataError(f"raw file {path}: column '{col}' has a missing/NaN value (first at data row {row + 1})")


def _finish(parts: list[tuple[Path, pl.DataFrame]]) -> RawData:
    """parts: (path, frame) per split with click, purchase, SPARSE, DENSE; returns the Table and fixed splits."""
    frames, labels, scenarios, sizes = [], [], [], []
    for path, df in parts:
        _check_present(df, ("click", "purchase", *SPARSE, *DENSE), path)
        click = binary_label(df["click"], path)
        purchase = binary_label(df["purchase"], path)
        keep = ~((click == 0) & (purchase == 1))
        df = df.filter(pl.Series(keep))
        labels.append(click[keep])
        scenarios.append(scenario_from_map(df["301"], SCENARIO, path))
        sizes.append(df.height)
        frames.append(df.select(*SPARSE, *DENSE).with_columns(pl.col(*DENSE).cast(pl.Float64, strict=False)))
    df = pl.concat(frames, how="vertical_relaxed")
    path = parts[0][0]
    table: Table = build_table(path, df, sparse=SPARSE, dense=DENSE, label=np.concatenate(labels),
                               scenario=np.concatenate(scenarios), n_scenarios=3, descriptions=DESCRIPTIONS)
    bounds = np.cumsum([0, *sizes])
    splits = {name: np.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(SPLITS)}
    return RawData(table, splits=splits, meta={"source": [str(p) for p, _ in parts],
                                               "scenario_names": ["301=1", "301=2", "301=3"]})


# ------------------------------------------------------------------------------ raw Tianchi files


def _features(df: pl.DataFrame, column: str, prefix: str) -> pl.DataFrame:
    """Pull each used field's (feature id, value) out of the \\x01/\\x02/\\x03-encoded feature list.

    The greedy ``.*`` makes the last occurrence of a repeated field win, as in the script's dict.
    """
    exprs = []
    for field in SPARSE:
        pattern = rf"^(?:.*\x01)?{re.escape(field)}\x02([^\x01\x03]*)\x03([^\x01]*)"
        groups = pl.col(column).str.extract_groups(pattern)
        exprs.append(groups.struct.field("1").alias(f"{prefix}{field}"))
        if field in DENSE_FIELDS:
            exprs.append(groups.struct.field("2").alias(f"{prefix}D{field}"))
    return df.select(exprs)


def _read_raw_split(skeleton: Path, common: Path) -> pl.DataFrame:
    sk = read_csv(skeleton, has_header=False, quote_char=None, infer_schema=False,
                  new_columns=["sample_id", "click", "purchase", "common_index", "n_features", "features"])
    cf = read_csv(common, has_header=False, quote_char=None, infer_schema=False,
                  new_columns=["common_index", "n_features", "features"])
    for df, path, col in ((sk, skeleton, "features"), (cf, common, "features"), (sk, skeleton, "common_index")):
        _check_present(df, (col,), path)
    sk = pl.concat([sk.select("click", "purchase", "common_index"), _features(sk, "features", "s_")], how="horizontal")
    cf = pl.concat([cf.select("common_index"), _features(cf, "features", "c_")], how="horizontal")
    cf = cf.unique("common_index", keep="last", maintain_order=True)
    df = sk.join(cf, on="common_index", how="left", maintain_order="left", coalesce=True)
    orphan = df["c_101"].is_null() & ~sk["common_index"].is_in(cf["common_index"].implode())
    if orphan.any():
        row = int(orphan.arg_true()[0])
        raise DataError(f"raw file {skeleton}: column 'common_feature_index' value {df['common_index'][row]!r} "
                        f"at data row {row + 1} is not in {common}")
    out = [pl.col("click"), pl.col("purchase")]
    for name in (*SPARSE, *DENSE):
        out.append(pl.coalesce(pl.col(f"c_{name}"), pl.col(f"s_{name}"), pl.lit("0")).alias(name))
    df = df.select(out)
    for col in ("click", "purchase", *DENSE):
        cast = df[col].cast(pl.Float64, strict=False)
        if cast.null_count():
            row = int(cast.is_null().arg_true()[0])
            raise DataError(f"raw file {skeleton}: column '{col}' must be numeric; got {df[col][row]!r} "
                            f"at data row {row + 1}")
        df = df.with_columns(cast.alias(col))
    return df.filter(~((pl.col("click") == 0) & (pl.col("purchase") == 1)))


def _encode_rare(train: pl.DataFrame, others: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """Ids seen >= MIN_COUNT times in train -> 1.. (first-appearance order); the rest and missing -> 0."""
    exprs = []
    for field in SPARSE:
        present = train.select(pl.col(field)).with_row_index("row").filter(pl.col(field) != "0")
        vocab = (present.group_by(field).agg(pl.len().alias("n"), pl.col("row").min().alias("first"))
                 .filter(pl.col("n") >= MIN_COUNT).sort("first"))
        mapping = dict(zip(vocab[field].to_list(), range(1, vocab.height + 1)))
        exprs.append(pl.col(field).replace_strict(mapping, default=0, return_dtype=pl.Int64).alias(field))
    return [df.with_columns(exprs) for df in (train, *others)]


def _read_raw(files: list[Path]) -> RawData:
    from sklearn.model_selection import train_test_split

    train = _read_raw_split(files[0], files[1])
    test = _read_raw_split(files[2], files[3])
    train, test = _encode_rare(train, [test])
    val_rows, test_rows = train_test_split(np.arange(test.height), test_size=0.5, random_state=2022)
    return _finish([(files[0], train), (files[2], test.select(pl.all().gather(val_rows))),
                    (files[2], test.select(pl.all().gather(test_rows)))])


# ------------------------------------------------------------------------------ processed CSVs


def _read(raw_dir: Path) -> RawData:
    files = _find(Path(raw_dir))
    if len(files) == 4:
        return _read_raw(files)
    columns = ("click", "purchase", *SPARSE, *DENSE)
    return _finish([(p, read_csv(p, columns=columns)) for p in files])


register_dataset(DatasetInfo(
    name="ali-ccp",
    description="Ali-CCP: 85M Taobao ad impressions with click and purchase; 3 scenarios (field 301); label click; "
                "fixed train/val/test",
    read=_read,
    find_files=_find,
    download=Download(manual=MANUAL),
    scenarios=("301=1", "301=2", "301=3"),
))
