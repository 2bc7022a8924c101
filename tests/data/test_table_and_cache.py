from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recwise.data.cache import Prepared, load_prepared, save_prepared
from recwise.data.schema import Field, FieldKind, Schema
from recwise.data.split import random_split
from recwise.data.table import BatchLoader
from recwise.errors import DataError
from tests.conftest import planted_table


def test_schema_json_round_trip() -> None:
    s = planted_table(100).schema
    assert Schema.from_json(s.to_json()) == s
    assert [f.name for f in s.sparse] == ["a", "b", "noise"] and s.num_scenarios == 3


def test_schema_rejects_bad_fields() -> None:
    with pytest.raises(DataError, match="vocab_size"):
        Field("u", FieldKind.SPARSE, 0)
    with pytest.raises(DataError, match="duplicate"):
        Schema((Field("u", FieldKind.DENSE), Field("u", FieldKind.DENSE)))


def test_tensors_stack_columns_by_kind() -> None:
    t = planted_table(50)
    b = t.tensors()
    assert b["sparse"].shape == (50, 3) and b["sparse"].dtype == torch.int64
    assert b["dense"].shape == (50, 1) and b["label"].dtype == torch.float32
    assert torch.equal(b["sparse"][:, 1], torch.from_numpy(t.columns["b"]))


def test_loader_visits_every_row_once_in_a_seeded_order() -> None:
    data = {"i": torch.arange(1000)}
    loader = BatchLoader(data, 64, shuffle=True, seed=3)
    loader.set_epoch(2)
    seen = torch.cat([b["i"] for b in loader])
    assert sorted(seen.tolist()) == list(range(1000)) and len(loader) == 16
    again = torch.cat([b["i"] for b in loader])
    assert torch.equal(seen, again)  # same (seed, epoch): same order, so a resumed run sees the same batches
    loader.set_epoch(3)
    assert not torch.equal(seen, torch.cat([b["i"] for b in loader]))
    plain = torch.cat([b["i"] for b in BatchLoader(data, 64)])
    assert torch.equal(plain, torch.arange(1000))


def test_split_depends_only_on_split_seed() -> None:
    a, b = random_split(1000, seed=5), random_split(1000, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(len(v) for v in a.values()) == 1000
    assert len(np.intersect1d(a["train"], a["test"])) == 0
    assert not np.array_equal(a["test"], random_split(1000, seed=6)["test"])


def test_cache_round_trip_is_memory_mapped(tmp_path: Path) -> None:
    t = planted_table(300)
    folder = save_prepared(tmp_path / "p", Prepared(t, random_split(300), {"key": "k"}))
    back = load_prepared(folder)
    assert isinstance(back.table.columns["a"], np.memmap)
    assert back.table.schema == t.schema
    np.testing.assert_array_equal(back.table.columns["label"], t.columns["label"])
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temp leftovers


def test_corrupt_cache_names_the_file(tmp_path: Path) -> None:
    folder = save_prepared(tmp_path / "p", Prepared(planted_table(30), random_split(30), {}))
    (folder / "a.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"corrupt.*delete"):
        load_prepared(folder)
    folder = save_prepared(tmp_path / "q", Prepared(planted_table(30), random_split(30), {}))
    (folder / "split.npz").unlink()
    with pytest.raises(DataError, match="split.npz is missing"):
        load_prepared(folder)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    t = planted_table(30)
    t.columns["a"] = np.array([object()] * 30, dtype=object)  # np.save refuses to pickle
    with pytest.raises(ValueError):
        save_prepared(tmp_path / "p", Prepared(t, random_split(30), {}))
    assert list(tmp_path.iterdir()) == []
