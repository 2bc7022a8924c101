"""MovieLens loaders: GroupLens and RecBole atomic layouts agree; age buckets and scenario groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recwise.data.datasets import prepare
from recwise.data.datasets.movielens import AGE_GROUP, age_bucket
from recwise.errors import DataError
from tests.data.ml100k_lines import U_DATA, U_ITEM, U_USER

ATOMIC_INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA
ATOMIC_USER = ("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
               "196\t49\tM\twriter\t55105\n186\t39\tF\texecutive\t00000\n22\t25\tM\twriter\t40206\n")
ATOMIC_ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
               "242\tKolya\t1996\tComedy\n"
               "302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
               "377\tHeavyweights\t1994\tChildren's Comedy\n")


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_grouplens_and_atomic_layouts_give_the_same_table(tmp_path: Path) -> None:
    grouplens = _write(tmp_path / "gl", {"u.data": U_DATA, "u.user": U_USER, "u.item": U_ITEM})
    atomic = _write(tmp_path / "atomic", {"ml-100k.inter": ATOMIC_INTER, "ml-100k.user": ATOMIC_USER,
                                          "ml-100k.item": ATOMIC_ITEM})
    a = prepare("ml-100k", grouplens, use_cache=False).table
    b = prepare("ml-100k", atomic, use_cache=False).table
    assert a.schema == b.schema
    for name in a.columns:
        np.testing.assert_array_equal(a.columns[name], b.columns[name], err_msg=name)
    assert a.columns["label"].tolist() == [0, 0, 0, 1]  # rating > 3
    assert a.schema["cate_id"].vocab_size == 3  # first genres: Comedy, Crime, Children's
    # ages 49, 39, 25 -> buckets 45, 35, 25 -> scenarios 2, 2, 1
    assert a.columns["scenario"].tolist() == [2, 2, 1, 2]


def test_age_buckets_follow_ml1m_codes() -> None:
    ages = np.array([1, 7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73])
    assert age_bucket(ages).tolist() == [1, 1, 1, 18, 18, 25, 25, 35, 35, 45, 45, 50, 50, 56, 56]


def test_scenario_groups_of_ml1m(tmp_path: Path) -> None:
    users = "".join(f"{i}::M::{age}::10::48067\n" for i, age in enumerate((1, 18, 25, 35, 45, 50, 56), start=1))
    ratings = "".join(f"{i}::1193::{1 + i % 5}::978300760\n" for i in range(1, 8))
    raw = _write(tmp_path / "ml1m", {"users.dat": users, "ratings.dat": ratings,
                                     "movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"})
    t = prepare("ml-1m", raw, use_cache=False).table
    assert t.columns["scenario"].tolist() == [AGE_GROUP[a] for a in (1, 18, 25, 35, 45, 50, 56)]
    assert t.columns["scenario"].tolist() == [0, 0, 1, 2, 2, 2, 2]
    assert t.schema.num_scenarios == 3


def test_rating_of_an_unknown_user_is_refused(tmp_path: Path) -> None:
    raw = _write(tmp_path / "gl", {"u.data": U_DATA + "999\t242\t4\t881250949\n", "u.user": U_USER, "u.item": U_ITEM})
    with pytest.raises(DataError, match=r"u\.data.*user"):
        prepare("ml-100k", raw, use_cache=False)
