"""MIND (Microsoft News Dataset) in Scenario-Wise Rec's setup: 4 scenarios by news category.

Rules (reference: Scenario-Wise Rec ``scripts/data/mind/data_process.py`` and
``scripts/run_mind_ctr_multi_domain.py``):

* rows: every impression of ``behaviors.tsv`` exploded into one (user, news, click flag) row per
  shown news item, for the train and the dev folder (each joined with its own ``news.tsv``), then
  concatenated. The click history column is ignored;
* scenario: the news ``Category``: news 0, lifestyle 1, sports 2, finance 3; rows of any other
  category (or of a news id missing from ``news.tsv``) are dropped;
* label: the impression's click flag (``N123-1`` -> 1, ``N123-0`` -> 0);
* features: sparse ``User_ID``, ``News_ID``, ``SubCategory``.

Accepted layouts: the raw MIND folders (``MINDlarge_train/`` and ``MINDlarge_dev/``, or any
subfolders whose names contain ``train`` / ``dev`` (``MINDsmall_*`` too), each holding
``behaviors.tsv`` and ``news.tsv``; or one such pair directly in the folder), or the processed
CSV of the script (``mind_all.csv``, ``mind_sample.csv`` or ``mind.csv`` with columns User_ID,
News_ID, label, Category, SubCategory). The paper's row counts suggest MIND-large.
"""

from __future__ import annotations

from pathlib import Path

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

CATEGORIES = ("news", "lifestyle", "sports", "finance")
SPARSE = ("User_ID", "News_ID", "SubCategory")
PROCESSED = ("mind_all.csv", "mind.csv", "mind_sample.csv")
BEHAVIOR_COLUMNS = ["impression_id", "User_ID", "time", "history", "impressions"]
NEWS_COLUMNS = ["News_ID", "Category", "SubCategory", "title", "abstract", "url", "title_entities", "abstract_entities"]
BASE_URL = "https://mind201910small.blob.core.windows.net/release"
DESCRIPTIONS = {
    "User_ID": "MIND anonymised user id",
    "News_ID": "MIND news article id",
    "SubCategory": "news subcategory (e.g. football_nfl, newsworld, finance-real-estate)",
}


def _pair(folder: Path) -> list[Path] | None:
    files = [folder / "behaviors.tsv", folder / "news.tsv"]
    return files if all(p.exists() for p in files) else None


def _find(raw: Path) -> list[Path]:
    direct = _pair(raw)
    if direct:
        return direct
    folders = sorted((p for p in raw.iterdir() if p.is_dir()), key=lambda p: p.name) if raw.is_dir() else []
    train = [p for p in folders if "train" in p.name.lower()]
    dev = [p for p in folders if "dev" in p.name.lower()]
    if train or dev:
        if len(train) != 1 or len(dev) != 1:
            raise DataError(f"MIND in {raw}: expected one train and one dev folder; found train "
                            f"{[p.name for p in train]}, dev {[p.name for p in dev]}")
        files = []
        for folder in (train[0], dev[0]):
            pair = _pair(folder)
            if pair is None:
                raise DataError(f"MIND folder {folder} lacks behaviors.tsv or news.tsv")
            files += pair
        return files
    for name in PROCESSED:
        if (raw / name).exists():
            return [raw / name]
    raise DataError(
        f"no MIND files in {raw}: expected MINDlarge_train/ and MINDlarge_dev/ (each with behaviors.tsv and "
        f"news.tsv) or the processed mind_all.csv; run `recwise data download mind`"
    )


def _read_folder(behaviors_path: Path, news_path: Path) -> pl.DataFrame:
    behaviors = read_csv(behaviors_path, separator="\t", has_header=False, quote_char=None, infer_schema=False,
                         new_columns=BEHAVIOR_COLUMNS)
    for col in ("User_ID", "impressions"):
        if behaviors[col].null_count():
            row = int(behaviors[col].is_null().arg_true()[0])
            raise DataError(f"raw file {behaviors_path}: column '{col}' (field {BEHAVIOR_COLUMNS.index(col) + 1}) "
                            f"is empty at data row {row + 1}")
    rows = (behaviors.select("User_ID", pl.col("impressions").str.strip_chars().str.split(" ").alias("item"))
            .explode("item").filter(pl.col("item") != ""))
    parts = rows["item"].str.split_exact("-", 1)
    rows = rows.with_columns(parts.struct.field("field_0").alias("News_ID"),
                             parts.struct.field("field_1").alias("flag"))
    if rows["flag"].null_count():
        token = rows.filter(pl.col("flag").is_null())["item"][0]
        raise DataError(f"raw file {behaviors_path}: column 'impressions' has {token!r} without a -0/-1 click flag "
                        f"(MIND's test set has no labels: use the train and dev folders)")
    label = binary_label(rows["flag"], behaviors_path)
    news = read_csv(news_path, separator="\t", has_header=False, quote_char=None, infer_schema=False,
                    new_columns=NEWS_COLUMNS)
    news = news.select("News_ID", "Category", "SubCategory").unique("News_ID", keep="first")
    rows = rows.with_columns(label=pl.Series(label)).join(news, on="News_ID", how="left", maintain_order="left")
    return rows.select("User_ID", "News_ID", "Category", "SubCategory", "label")


def _read(raw_dir: Path) -> RawData:
    files = _find(Path(raw_dir))
    if len(files) == 1:
        path = files[0]
        df = read_csv(path, columns=["User_ID", "News_ID", "label", "Category", "SubCategory"])
        df = df.with_columns(label=pl.Series(binary_label(df["label"], path)))
    else:
        path = files[0]
        df = pl.concat([_read_folder(files[i], files[i + 1]) for i in range(0, len(files), 2)])
    df = df.filter(pl.col("Category").is_in(CATEGORIES))
    if df.height == 0:
        raise DataError(f"raw file {path}: no row has a Category in {list(CATEGORIES)}")
    scenario = scenario_from_map(df["Category"], {c: i for i, c in enumerate(CATEGORIES)}, path)
    table = build_table(path, df, sparse=SPARSE, dense=(), label=df["label"].to_numpy(), scenario=scenario,
                        n_scenarios=4, descriptions=DESCRIPTIONS)
    return RawData(table, meta={"source": [str(p) for p in files], "scenario_names": list(CATEGORIES)})


register_dataset(DatasetInfo(
    name="mind",
    description="MIND: news impressions exploded to (user, news, click) rows; 4 scenarios (news, lifestyle, sports, "
                "finance); label click",
    read=_read,
    find_files=_find,
    download=Download(files={f"{BASE_URL}/MINDlarge_train.zip": "", f"{BASE_URL}/MINDlarge_dev.zip": ""}),
    scenarios=CATEGORIES,
))
