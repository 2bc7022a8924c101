"""Feature-selection datasets read from the real samples in ../shared/data (skipped when absent)."""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
from pathlib import Path

import numpy as np
import pytest

from recwise.data.datasets.fs_tables import field_summary, list_fs_datasets, prepare_fs
from recwise.data.schema import FieldKind
from recwise.errors import ConfigError, DataError

SHARED_DATA = Path(os.environ.get("RECWISE_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))
SAMPLES = {
    "ml-1m": "ctr-samples/ml-1m",
    "avazu": "ctr-samples/avazu",
    "criteo": "ctr-samples/criteo",
    "ali-ccp": "msr-samples/ali-ccp",
    "kuairand": "msr-samples/kuairand",
}
N_FIELDS = {"ml-1m": 9, "avazu": 22, "criteo": 39, "ali-ccp": 23, "kuairand": 37}


def _sample(name: str) -> Path:
    d = SHARED_DATA / SAMPLES[name]
    if not d.is_dir():
        pytest.skip(f"sample folder {d} not available")
    return d


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_all_six_datasets_are_registered() -> None:
    assert set(list_fs_datasets()) == {"ml-100k", "ml-1m", "avazu", "criteo", "ali-ccp", "kuairand"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_tables(name: str, tmp_path: Path) -> None:
    p = prepare_fs(name, _sample(name), root=tmp_path)
    schema = p.table.schema
    feats = [f for f in schema.fields if f.kind != FieldKind.LABEL]
    assert len(feats) == N_FIELDS[name]
    assert all(f.kind == FieldKind.SPARSE for f in feats)  # ERASE label-encodes every field
    for f in feats:
        col = np.asarray(p.table.columns[f.name])
        assert f.description, f.name
        assert col.min() >= 0 and col.max() < f.vocab_size
        assert len(np.unique(col)) == f.vocab_size  # vocabulary = values seen (LabelEncoder)
    label = np.asarray(p.table.columns["label"])
    assert set(np.unique(label)) <= {0.0, 1.0}
    n = len(p.table)
    sizes = {k: len(v) for k, v in p.splits.items()}
    assert sum(sizes.values()) == n and set(np.concatenate(list(p.splits.values()))) == set(range(n))
    if name in ("avazu", "criteo"):  # sequential 70/20/10
        assert list(p.splits["train"]) == list(range(int(n * 0.7)))
        assert p.splits["test"][0] == int(n * 0.9)
    elif name == "ali-ccp":  # sequential 50/25/25 of train + val + test
        assert list(p.splits["train"]) == list(range(int(n * 0.5)))
    else:  # random 70/20/10
        assert sizes["train"] == round(0.7 * n) and sizes["val"] == round(0.2 * n)
        assert not np.array_equal(p.splits["train"], np.arange(sizes["train"]))
    summary = field_summary(p)
    assert [s["name"] for s in summary] == [f.name for f in feats]
    assert all(s["cardinality"] == f.vocab_size for s, f in zip(summary, feats))
    # cached: a second call loads the same table
    q = prepare_fs(name, _sample(name), root=tmp_path)
    assert q.meta["key"] == p.meta["key"]
    np.testing.assert_array_equal(np.asarray(q.table.columns["label"]), label)


def test_ml1m_label_rule_and_fields(tmp_path: Path) -> None:
    d = _sample("ml-1m")
    p = prepare_fs("ml-1m", d, root=tmp_path)
    raw = _rows(d / "ml-1m_sample.csv")
    assert [f.name for f in p.table.schema.sparse] == ["user_id", "movie_id", "genres", "age", "gender",
                                                        "occupation", "title", "timestamp", "zip"]
    np.testing.assert_array_equal(p.table.columns["label"], [float(int(r["rating"]) > 3) for r in raw])
    # ids in sorted order of the raw values (LabelEncoder), e.g. gender F < M
    gender = np.asarray(p.table.columns["gender"])
    assert all(g == (1 if r["gender"] == "M" else 0) for g, r in zip(gender, raw))
    assert field_summary(p)[2]["example"] == raw[0]["genres"]


def test_criteo_discretisation_as_erase(tmp_path: Path) -> None:
    d = _sample("criteo")
    p = prepare_fs("criteo", d, root=tmp_path)
    raw = _rows(d / "criteo_sample.csv")

    def erase(v: str) -> str:
        x = float(v) if v != "" else -999.0
        return str(int(math.log(x) ** 2)) if x > 2 else str(int(x) - 2)

    for col in ("I1", "I3", "I12"):
        values = sorted({erase(r[col]) for r in raw})
        ids = np.asarray(p.table.columns[col])
        assert p.table.schema[col].vocab_size == len(values)
        np.testing.assert_array_equal(ids, [values.index(erase(r[col])) for r in raw])
    np.testing.assert_array_equal(p.table.columns["label"], [float(r["label"]) for r in raw])


def test_avazu_concatenates_train_valid_test(tmp_path: Path) -> None:
    d = _sample("avazu")
    p = prepare_fs("avazu", d, root=tmp_path)
    labels = [float(r["label"]) for n in ("train_sample.csv", "valid_sample.csv", "test_sample.csv")
              for r in _rows(d / n)]
    np.testing.assert_array_equal(p.table.columns["label"], labels)
    small = prepare_fs("avazu", d, root=tmp_path, max_rows=30)
    assert len(small.table) == 30


def test_ml100k_fields(ml100k_dir: Path, tmp_path: Path) -> None:
    p = prepare_fs("ml-100k", ml100k_dir, root=tmp_path)
    assert [f.name for f in p.table.schema.sparse] == ["user_id", "item_id", "age", "gender", "occupation", "zip",
                                                        "genres", "year", "hour", "weekday"]
    assert len(p.table) == 100_000 and p.table.schema["user_id"].vocab_size == 943
    assert p.table.schema["hour"].vocab_size == 24 and p.table.schema["weekday"].vocab_size == 7
    inter = next(iter(sorted(ml100k_dir.glob("*.inter")) or sorted(ml100k_dir.glob("u.data"))))
    first = inter.read_text().splitlines()[1 if inter.suffix == ".inter" else 0].split("\t")
    when = dt.datetime.fromtimestamp(int(float(first[3])), dt.UTC)
    ex = p.meta["examples"]
    assert ex["hour"][0] == str(when.hour) and ex["weekday"][0] == str(when.isoweekday())
    ratings = np.array([float(line.split("\t")[2]) for line in inter.read_text().splitlines()[1:]])
    if inter.suffix != ".inter":
        ratings = np.array([float(line.split("\t")[2]) for line in inter.read_text().splitlines()])
    np.testing.assert_array_equal(p.table.columns["label"], (ratings > 3).astype(np.float32))


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown selection dataset 'ml100k'; did you mean 'ml-100k'"):
        prepare_fs("ml100k", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        prepare_fs("criteo", tmp_path / "nowhere")
    with pytest.raises(DataError, match="no Criteo files"):
        prepare_fs("criteo", tmp_path)
    (tmp_path / "criteo.csv").write_text("label,I1\n0,1\n")
    with pytest.raises(DataError, match="lacks column"):
        prepare_fs("criteo", tmp_path, use_cache=False)


def test_ml1m_dat_layout_matches_the_csv(tmp_path: Path) -> None:
    """The GroupLens .dat files, written here from the real sample's rows, give the csv's table."""
    d = _sample("ml-1m")
    raw = _rows(d / "ml-1m_sample.csv")
    dat = tmp_path / "dat"
    dat.mkdir()
    (dat / "ratings.dat").write_text("".join(f"{r['user_id']}::{r['movie_id']}::{r['rating']}::{r['timestamp']}\n"
                                             for r in raw), encoding="latin-1")
    users = {r["user_id"]: r for r in raw}
    (dat / "users.dat").write_text("".join(f"{u}::{r['gender']}::{r['age']}::{r['occupation']}::{r['zip']}\n"
                                           for u, r in users.items()), encoding="latin-1")
    movies = {r["movie_id"]: r for r in raw}
    (dat / "movies.dat").write_text("".join(f"{m}::{r['title']}::{r['genres']}\n" for m, r in movies.items()),
                                    encoding="latin-1")
    a = prepare_fs("ml-1m", d, root=tmp_path / "c1")
    b = prepare_fs("ml-1m", dat, root=tmp_path / "c2")
    assert a.table.schema == b.table.schema
    for name in a.table.columns:
        np.testing.assert_array_equal(a.table.columns[name], b.table.columns[name])
