"""Dataset registry and the checks every loader applies to its raw files.

A loader is a function ``read(raw_dir) -> RawData`` registered with :func:`register_dataset`
together with ``find_files(raw_dir) -> list[Path]`` (the raw files it will read; raising a
DataError naming what is missing) and download instructions. :func:`prepare` wraps it with
the prepared-data cache and the split.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recwise.data.cache import Prepared, cache_key, default_root, load_prepared, save_prepared
from recwise.data.schema import Field, FieldKind, Schema
from recwise.data.split import random_split
from recwise.data.table import Table
from recwise.errors import DataError
from recwise.registry import Registry

__all__ = [
    "DatasetInfo",
    "Download",
    "RawData",
    "binary_label",
    "dataset_info",
    "encode_ids",
    "list_datasets",
    "minmax",
    "prepare",
    "raw_dir_for",
    "read_csv",
    "register_dataset",
    "require_columns",
    "scenario_from_map",
]


@dataclass(frozen=True)
class Download:
    """Where a user with internet gets the raw files. ``files``: url -> sha256 (or "" if unknown)."""

    files: dict[str, str] = field(default_factory=dict)
    manual: str = ""  # instructions when the source needs a login or a manual step
    archive_members: tuple[str, ...] = ()  # files to extract from archives (empty: all)


@dataclass
class RawData:
    table: Table
    splits: dict[str, np.ndarray] | None = None  # fixed splits shipped with the data, else random
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    read: Callable[[Path], RawData]
    find_files: Callable[[Path], list[Path]]
    download: Download
    scenarios: tuple[str, ...] = ()
    version: int = 1  # bump when the loader's output changes: invalidates cached preparations


DATASETS: Registry[DatasetInfo] = Registry("dataset", hint="(`recwise data list` lists them)")


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    return DATASETS.add(info.name, info)


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name)


def raw_dir_for(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    return Path(data_dir) if data_dir is not None else default_root() / "raw" / name


def prepare(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    split_seed: int = 2022,
    split_ratio: tuple[float, float, float] = (0.8, 0.1, 0.1),
    root: Path | None = None,
    use_cache: bool = True,
) -> Prepared:
    """Read (or load from cache) dataset ``name`` and its fixed split."""
    info = dataset_info(name)
    raw_dir = raw_dir_for(name, data_dir)
    if not raw_dir.is_dir():
        raise DataError(
            f"no raw files for dataset '{name}': folder {raw_dir} does not exist; "
            f"run `recwise data download {name}` or pass --data-dir"
        )
    files = info.find_files(raw_dir)
    options = {"dataset": name, "version": info.version, "split_seed": split_seed, "split_ratio": list(split_ratio)}
    key = cache_key(files, options)
    folder = (root or default_root()) / "prepared" / f"{name}-{key}"
    if use_cache and (folder / "meta.json").exists():
        return load_prepared(folder)
    raw = info.read(raw_dir)
    splits = raw.splits if raw.splits is not None else random_split(len(raw.table), split_ratio, split_seed)
    meta = {**raw.meta, **options, "raw_dir": str(raw_dir), "rows": len(raw.table), "key": key}
    prepared = Prepared(raw.table, splits, meta)
    if use_cache:
        save_prepared(folder, prepared)
        return load_prepared(folder)
    return prepared


# ---------------------------------------------------------------- raw-file checks and encoders


def read_csv(path: Path, *, separator: str = ",", columns: Sequence[str] = (), has_header: bool = True,
             new_columns: Sequence[str] | None = None, **kwargs: Any) -> pl.DataFrame:
    """Read a delimited file with polars; missing/empty files and missing columns are DataErrors."""
    if not path.is_file():
        raise DataError(f"raw file {path} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"raw file {path} is empty")
    try:
        df = pl.read_csv(path, separator=separator, has_header=has_header, new_columns=new_columns,
                         infer_schema_length=10000, **kwargs)
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot parse raw file {path}: {first}") from None
    if df.height == 0:
        raise DataError(f"raw file {path} has a header but no rows")
    require_columns(df, columns, path)
    return df


def require_columns(df: pl.DataFrame, columns: Sequence[str], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"raw file {path} lacks column(s) {missing}; it has {df.columns}")


def _no_nulls(s: pl.Series, path: Path) -> None:
    bad = s.is_null()
    if s.dtype.is_float():
        bad = bad | s.is_nan()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataError(f"raw file {path}: column '{s.name}' has a missing/NaN value (first at data row {row + 1})")


def encode_ids(s: pl.Series, path: Path) -> tuple[np.ndarray, int]:
    """Label-encode a column to ids 0..V-1 (sorted order of values); returns (ids, V)."""
    _no_nulls(s, path)
    values = s.cast(pl.Utf8).to_numpy() if s.dtype == pl.Utf8 or s.dtype == pl.Categorical else s.to_numpy()
    uniq, inv = np.unique(values, return_inverse=True)
    return inv.astype(np.int64), int(len(uniq))


def _numeric(s: pl.Series, path: Path) -> np.ndarray:
    _no_nulls(s, path)
    if not s.dtype.is_numeric():
        try:
            s = s.cast(pl.Float64, strict=True)
        except pl.exceptions.PolarsError:
            bad = s.cast(pl.Float64, strict=False).is_null()
            row = int(bad.arg_true()[0])
            raise DataError(
                f"raw file {path}: column '{s.name}' must be numeric; got {s[row]!r} at data row {row + 1}"
            ) from None
    return s.cast(pl.Float64).to_numpy()


def minmax(s: pl.Series, path: Path) -> np.ndarray:
    """Min-max scale a numeric column to [0, 1] (as the paper's MinMaxScaler), float32."""
    x = _numeric(s, path)
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)).astype(np.float32)


def binary_label(s: pl.Series, path: Path, *, threshold: float | None = None) -> np.ndarray:
    """A 0/1 float32 label: ``value > threshold`` when given, else the column must already be 0/1."""
    x = _numeric(s, path)
    if threshold is not None:
        return (x > threshold).astype(np.float32)
    bad = ~np.isin(x, (0.0, 1.0))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"raw file {path}: label column '{s.name}' must be 0 or 1; "
                        f"got {x[row]!r} at data row {row + 1}")
    return x.astype(np.float32)


def scenario_from_map(s: pl.Series, mapping: dict[Any, int], path: Path) -> np.ndarray:
    """Map raw values to scenario ids; a value outside ``mapping`` is a DataError naming it."""
    _no_nulls(s, path)
    values = s.to_list()
    out = np.empty(len(values), dtype=np.int64)
    for value in set(values):
        if value not in mapping:
            raise DataError(
                f"raw file {path}: unknown scenario value {value!r} in column '{s.name}'; "
                f"expected one of {sorted(mapping, key=str)}"
            )
    lut = {v: mapping[v] for v in set(values)}
    out[:] = [lut[v] for v in values]
    return out


def sparse_field(name: str, vocab: int, description: str = "") -> Field:
    return Field(name, FieldKind.SPARSE, vocab, description)


def build_table(
    path: Path,
    df: pl.DataFrame,
    *,
    sparse: Sequence[str],
    dense: Sequence[str],
    label: np.ndarray,
    scenario: np.ndarray,
    n_scenarios: int,
    descriptions: dict[str, str] | None = None,
) -> Table:
    """Encode ``sparse`` columns to ids, min-max ``dense`` ones, and assemble the Table."""
    descriptions = descriptions or {}
    fields: list[Field] = []
    columns: dict[str, np.ndarray] = {}
    for name in sparse:
        ids, vocab = encode_ids(df[name], path)
        fields.append(Field(name, FieldKind.SPARSE, vocab, descriptions.get(name, "")))
        columns[name] = ids
    for name in dense:
        fields.append(Field(name, FieldKind.DENSE, 0, descriptions.get(name, "")))
        columns[name] = minmax(df[name], path)
    fields.append(Field("scenario", FieldKind.SCENARIO, n_scenarios, "scenario index"))
    columns["scenario"] = scenario.astype(np.int64)
    fields.append(Field("label", FieldKind.LABEL))
    columns["label"] = label.astype(np.float32)
    return Table(Schema(tuple(fields)), columns)
