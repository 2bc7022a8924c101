"""Amazon 5-core (2014 release) in Scenario-Wise Rec's setup: 3 scenarios by product category.

Rules (reference: Scenario-Wise Rec ``scripts/data/amazon_5_core/data_process.py`` and
``scripts/run_amazon_ctr_multi_domain.py``):

* rows: every review of the three 5-core files, concatenated;
* scenario: the source file: Beauty 0, Clothing_Shoes_and_Jewelry 1, Health_and_Personal_Care 2;
* label: ``overall > 3`` (the star rating);
* features: sparse ``user`` (reviewerID) and ``item`` (asin); nothing else.

Accepted layouts: the raw files ``reviews_Beauty_5.json``,
``reviews_Clothing_Shoes_and_Jewelry_5.json`` and ``reviews_Health_and_Personal_Care_5.json``
(one JSON object per line, each possibly gzipped as ``.json.gz``), or the ``amazon.csv`` the
script writes (columns user, item, label already 0/1, domain_indicator 0-2).
"""

from __future__ import annotations

import gzip
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

CATEGORIES = ("Beauty", "Clothing_Shoes_and_Jewelry", "Health_and_Personal_Care")
SCENARIOS = ("Beauty", "Clothing, Shoes and Jewelry", "Health and Personal Care")
PROCESSED = "amazon.csv"
BASE_URL = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
SPARSE = ("user", "item")
DESCRIPTIONS = {"user": "Amazon reviewer id (reviewerID)", "item": "Amazon product id (asin)"}


def _find(raw: Path) -> list[Path]:
    files, missing = [], []
    for category in CATEGORIES:
        stem = f"reviews_{category}_5.json"
        hit = next((raw / n for n in (stem, stem + ".gz") if (raw / n).exists()), None)
        (files.append(hit) if hit is not None else missing.append(stem))
    if files and missing:
        raise DataError(f"Amazon 5-core in {raw}: {[p.name for p in files]} there but {missing} (or .json.gz) missing")
    if files:
        return files
    if (raw / PROCESSED).exists():
        return [raw / PROCESSED]
    raise DataError(
        f"no Amazon 5-core files in {raw}: expected reviews_{{Beauty,Clothing_Shoes_and_Jewelry,"
        f"Health_and_Personal_Care}}_5.json (or .json.gz) from the 2014 release, or amazon.csv from "
        f"Scenario-Wise Rec's data_process.py; run `recwise data download amazon-5core`"
    )


def _read_reviews(path: Path) -> pl.DataFrame:
    """user, item, overall of one 5-core file (JSON lines, plain or gzipped)."""
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"raw file {path} is missing or empty")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"raw file {path} is not a valid gzip file ({exc})") from None
    if not data.strip():
        raise DataError(f"raw file {path} is empty")
    schema = {"reviewerID": pl.Utf8, "asin": pl.Utf8, "overall": pl.Utf8}
    try:  # numbers read as text here; the label check below names any non-numeric rating
        df = pl.read_ndjson(io.BytesIO(data), schema=schema)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"cannot parse raw file {path} as one JSON object per line: {first}") from None
    for key in schema:
        if df[key].null_count() == df.height:
            raise DataError(f"raw file {path} lacks field '{key}' (expected reviewerID, asin, overall per line)")
    return df.rename({"reviewerID": "user", "asin": "item"})


def _read(raw_dir: Path) -> RawData:
    files = _find(Path(raw_dir))
    if len(files) == 1:
        path = files[0]
        df = read_csv(path, columns=["user", "item", "label", "domain_indicator"])
        label = binary_label(df["label"], path)
        scenario = scenario_from_map(df["domain_indicator"], {0: 0, 1: 1, 2: 2}, path)
    else:
        frames, labels, scenarios = [], [], []
        for i, path in enumerate(files):
            df = _read_reviews(path)
            for col in SPARSE:
                if df[col].null_count():
                    row = int(df[col].is_null().arg_true()[0])
                    raise DataError(f"raw file {path}: column '{col}' has a missing value "
                                    f"(first at data row {row + 1})")
            labels.append(binary_label(df["overall"], path, threshold=3))
            scenarios.append(np.full(df.height, i, dtype=np.int64))
            frames.append(df.select(SPARSE))
        df = pl.concat(frames)
        label = np.concatenate(labels)
        scenario = np.concatenate(scenarios)
        path = files[0]
    table = build_table(path, df, sparse=SPARSE, dense=(), label=label, scenario=scenario, n_scenarios=3,
                        descriptions=DESCRIPTIONS)
    return RawData(table, meta={"source": [str(p) for p in files], "scenario_names": list(SCENARIOS)})


register_dataset(DatasetInfo(
    name="amazon-5core",
    description="Amazon reviews 2014, 5-core Beauty / Clothing / Health: 824k reviews; 3 scenarios (category); "
                "label overall>3",
    read=_read,
    find_files=_find,
    download=Download(files={f"{BASE_URL}/reviews_{c}_5.json.gz": "" for c in CATEGORIES}),
    scenarios=SCENARIOS,
))
