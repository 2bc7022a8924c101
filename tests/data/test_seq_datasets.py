"""Every sequential dataset reads its raw and its RecBole atomic layout (small files written here)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from recwise.data.seq_datasets import list_seq_datasets, load_sequences, seq_dataset_info
from recwise.errors import ConfigError, DataError

# 8 users: 7 with 6 items each over 6 items (7 interactions per item); user 7 has only 2 interactions
# (dropped by [5, inf) filters)
EVENTS = [(f"u{u}", f"i{(u + t) % 6}", 4.0, 1_400_000_000 + 86_400 * (t * 10 + u))
          for u in range(7) for t in range(6)] + [("u7", "i0", 5.0, 1_500_000_000), ("u7", "i1", 5.0, 1_500_000_001)]


def _write(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    if name.endswith(".inter"):
        item = "business_id" if name == "yelp.inter" else "item_id"
        lines = [f"user_id:token\t{item}:token\trating:float\ttimestamp:float"]
        lines += [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in EVENTS]
        p.write_text("\n".join(lines) + "\n")
    elif name == "u.data":
        p.write_text("".join(f"{u[1:]}\t{i[1:]}\t{int(r)}\t{t}\n" for u, i, r, t in EVENTS))
    elif name == "ratings.dat":
        p.write_text("".join(f"{u[1:]}::{i[1:]}::{int(r)}::{t}\n" for u, i, r, t in EVENTS))
    elif name.startswith("ratings_"):
        p.write_text("".join(f"A{u},B{i},{r},{t}\n" for u, i, r, t in EVENTS))
    elif name.startswith("reviews_"):
        recs = "".join(json.dumps({"reviewerID": u, "asin": i, "overall": r, "unixReviewTime": t,
                                   "reviewText": "fine"}) + "\n" for u, i, r, t in EVENTS)
        p.write_bytes(gzip.compress(recs.encode()) if name.endswith(".gz") else recs.encode())
    elif name.startswith("yelp_academic"):
        import datetime

        p.write_text("".join(json.dumps({"review_id": str(k), "user_id": u, "business_id": i, "stars": r,
                                         "date": datetime.datetime.utcfromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")})
                             + "\n" for k, (u, i, r, t) in enumerate(EVENTS)))
    else:
        raise AssertionError(name)


LAYOUTS = [
    ("ml-100k", "u.data"), ("ml-100k", "ml-100k.inter"),
    ("ml-1m", "ratings.dat"), ("ml-1m", "ml-1m.inter"),
    ("amazon-beauty", "reviews_Beauty_5.json.gz"), ("amazon-beauty", "ratings_Beauty.csv"),
    ("amazon-beauty", "Amazon_Beauty.inter"),
    ("amazon-sports", "reviews_Sports_and_Outdoors_5.json"), ("amazon-sports", "Amazon_Sports_and_Outdoors.inter"),
    ("amazon-games", "ratings_Video_Games.csv"), ("amazon-games", "Amazon_Video_Games.inter"),
    ("yelp", "yelp_academic_dataset_review.json"), ("yelp", "yelp.inter"),
]


@pytest.mark.parametrize(("name", "file"), LAYOUTS)
def test_every_layout_gives_the_same_sequences(name: str, file: str, tmp_path: Path) -> None:
    _write(tmp_path / "raw", file)
    seqs, meta = load_sequences(name, tmp_path / "raw", root=tmp_path / "home")
    info = seq_dataset_info(name)
    if info.user_interval is None:  # ml-100k: no filter
        assert seqs.n_users == 8 and len(seqs) == len(EVENTS)
    else:  # [5, ...) drops u7; its two items still have >= 5 other interactions
        assert seqs.n_users == 7 and len(seqs) == 42
    # time order: user u's items are (u + t) % 6 for t = 0..5
    first = seqs.item_tokens[seqs.user_items(0)].tolist()
    assert [str(x).lstrip("B").lstrip("i") for x in first] == [str(t) for t in range(6)]
    again, _ = load_sequences(name, tmp_path / "raw", root=tmp_path / "home")  # from the cache
    assert np.array_equal(again.items, seqs.items) and np.array_equal(again.offsets, seqs.offsets)


def test_registry_and_errors(tmp_path: Path) -> None:
    assert {"ml-100k", "ml-1m", "amazon-beauty", "amazon-sports", "amazon-games", "yelp"} <= set(list_seq_datasets())
    assert seq_dataset_info("ml-1m").max_len == 200 and seq_dataset_info("yelp").user_interval == (5, 100)
    with pytest.raises(ConfigError, match="did you mean 'ml-1m'"):
        seq_dataset_info("ml-1mm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="expected one of"):
        load_sequences("amazon-beauty", tmp_path / "empty", use_cache=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ml-100k.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\tyesterday\n")
    with pytest.raises(DataError, match="must be numeric"):
        load_sequences("ml-100k", bad, use_cache=False)
