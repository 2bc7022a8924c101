"""Streaming batches from memory-mapped columns: coverage, order semantics, equality with the in-memory path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recwise.data.cache import Prepared, load_prepared, save_prepared
from recwise.data.schema import Field, FieldKind, Schema
from recwise.data.table import BatchLoader, Table, TableStream
from recwise.errors import DataError
from recwise.registry import get_model
from recwise.tasks.msr import MSRRun, bce_loss, evaluate, run
from recwise.train import TrainConfig, Trainer, seed_everything


def _id_table(n: int) -> Table:
    """Row i holds id i, dense i/2, scenario i % 3 and label i % 2: every value says which row it came from."""
    i = np.arange(n)
    schema = Schema((Field("id", FieldKind.SPARSE, n), Field("x", FieldKind.DENSE),
                     Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL)))
    return Table(schema, {"id": i.astype(np.int64), "x": (i / 2).astype(np.float32), "scenario": i % 3,
                          "label": (i % 2).astype(np.float32)})


def _epoch_ids(loader: object) -> list[np.ndarray]:
    out = []
    for b in loader:  # type: ignore[attr-defined]
        ids = b["sparse"][:, 0].numpy()
        # every column of a row comes from that same row
        np.testing.assert_array_equal(b["dense"][:, 0].numpy(), (ids / 2).astype(np.float32))
        np.testing.assert_array_equal(b["scenario"].numpy(), ids % 3)
        np.testing.assert_array_equal(b["label"].numpy(), (ids % 2).astype(np.float32))
        out.append(ids)
    return out


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory) -> Table:
    """A 10,007-row id table saved to the cache and loaded back memory-mapped."""
    t = _id_table(10_007)
    folder = save_prepared(tmp_path_factory.mktemp("c") / "p", Prepared(t, {"train": np.arange(10_007)}, {}))
    back = load_prepared(folder).table
    assert isinstance(back.columns["id"], np.memmap)
    return back


@pytest.mark.parametrize("shuffle", ["rows", "blocks"])
@pytest.mark.parametrize(("batch", "block", "window"), [(256, 300, 4), (1000, 64, 1), (10_007, 4096, 32), (97, 5, 3)])
def test_every_row_exactly_once_per_epoch(mapped: Table, shuffle: str, batch: int, block: int, window: int) -> None:
    rows = np.sort(np.random.default_rng(0).choice(len(mapped), 6000, replace=False))
    for sub in (None, rows):
        loader = TableStream(mapped, sub, shuffle=shuffle, block_rows=block, window_blocks=window).loader(batch, seed=4)
        want = np.arange(len(mapped)) if sub is None else sub
        for epoch in (0, 1):
            loader.set_epoch(epoch)
            got = _epoch_ids(loader)
            assert len(got) == len(loader) and all(len(b) == batch for b in got[:-1])
            seen = np.concatenate(got)
            np.testing.assert_array_equal(np.sort(seen), want)  # each row once, nothing else
            if batch < len(want):
                assert not np.array_equal(seen, want)  # shuffled


def test_order_depends_only_on_seed_and_epoch(mapped: Table) -> None:
    def order(shuffle: str, seed: int, epoch: int) -> np.ndarray:
        loader = TableStream(mapped, shuffle=shuffle, block_rows=100, window_blocks=4).loader(512, seed=seed)
        loader.set_epoch(epoch)
        return np.concatenate(_epoch_ids(loader))

    for shuffle in ("rows", "blocks"):
        assert np.array_equal(order(shuffle, 1, 2), order(shuffle, 1, 2))
        assert not np.array_equal(order(shuffle, 1, 2), order(shuffle, 1, 3))
        assert not np.array_equal(order(shuffle, 1, 2), order(shuffle, 2, 2))


def test_blocks_read_one_window_at_a_time(mapped: Table) -> None:
    """Block shuffling: a window of 4 blocks of 100 rows is used up before the next one starts."""
    loader = TableStream(mapped, np.arange(10_000), shuffle="blocks", block_rows=100, window_blocks=4).loader(400)
    batches = _epoch_ids(loader)
    assert len(batches) == 25
    for ids in batches:
        blocks = np.unique(ids // 100)
        assert len(blocks) == 4 and np.array_equal(np.sort(ids), np.concatenate([np.arange(b * 100, b * 100 + 100)
                                                                                for b in blocks]))
    plain = np.concatenate(_epoch_ids(TableStream(mapped).loader(999, shuffle=False)))
    np.testing.assert_array_equal(plain, np.arange(len(mapped)))  # no shuffle: file order


def test_rows_shuffle_gives_the_in_memory_batches(mapped: Table) -> None:
    rows = np.arange(0, len(mapped), 3)
    memory = BatchLoader(mapped.take(rows).tensors(), 300, shuffle=True, seed=9)
    streamed = TableStream(mapped, rows, shuffle="rows").loader(300, seed=9)
    for loader in (memory, streamed):
        loader.set_epoch(5)
    pairs = list(zip(memory, streamed, strict=True))
    for a, b in pairs:
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("shuffle", ["rows", "blocks"])
def test_processes_share_each_batch(mapped: Table, shuffle: str) -> None:
    """With world_size 3 each rank gets a third of every batch; together they are the one-process batch."""
    rows = np.arange(0, len(mapped), 2)
    one = TableStream(mapped, rows, shuffle=shuffle, block_rows=64, window_blocks=3).loader(301, seed=1)
    ranks = [TableStream(mapped, rows, shuffle=shuffle, block_rows=64, window_blocks=3).loader(
        301, seed=1, rank=r, world_size=3) for r in range(3)]
    whole = _epoch_ids(one)
    parts = [_epoch_ids(r) for r in ranks]
    assert all(len(p) == len(whole) for p in parts)
    for k, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), batch)
        assert max(len(p[k]) for p in parts) - min(len(p[k]) for p in parts) <= 1
    # the in-memory loader shares the same way
    memory = [list(BatchLoader({"i": torch.arange(1000)}, 64, shuffle=True, seed=2, rank=r, world_size=3))
              for r in range(3)]
    single = list(BatchLoader({"i": torch.arange(1000)}, 64, shuffle=True, seed=2))
    for k, b in enumerate(single):
        assert torch.equal(torch.cat([m[k]["i"] for m in memory]), b["i"])


def test_mapped_pages_are_handed_back(tmp_path: Path) -> None:
    """Block shuffling copies each window out of the map and releases the mapped pages at once."""
    smaps = Path("/proc/self/smaps")
    if not smaps.exists():
        pytest.skip("optional: needs Linux /proc/self/smaps")
    n = 2_000_000  # 16 MB of int64 ids
    t = _id_table(n)
    folder = save_prepared(tmp_path / "p", Prepared(t, {"train": np.arange(2)}, {}))
    table = load_prepared(folder).table
    path = str(folder / "id.npy")

    def mapped_kib() -> int:
        lines = smaps.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.endswith(path):
                return next(int(x.split()[1]) for x in lines[i + 1 :] if x.startswith("Rss:"))
        return 0

    loader = TableStream(table, shuffle="blocks", block_rows=1 << 14, window_blocks=4).loader(8192)
    peak, seen = 0, 0
    for k, b in enumerate(loader):
        seen += len(b["label"])
        if k % 16 == 0:
            peak = max(peak, mapped_kib())
    assert seen == n
    assert peak <= 256, peak  # KiB resident in the 15,625 KiB mapping; unreleased it grows to the whole file
    np.asarray(table.columns["id"][: n // 2]).sum()
    assert mapped_kib() > 5_000  # the measure does see mapped pages


def test_bad_rows_are_refused(mapped: Table) -> None:
    with pytest.raises(DataError, match="rows must lie in 0..10006"):
        TableStream(mapped, np.array([0, 10_007]))
    with pytest.raises(DataError, match="shuffle must be 'rows' or 'blocks'"):
        TableStream(mapped, shuffle="full")  # type: ignore[arg-type]


def _fit(planted: Prepared, train: object) -> Trainer:
    seed_everything(3)
    cls = get_model("msr", "mmoe")
    model = cls(planted.table.schema, cls.Config(dropout=0.1))
    val = planted.part("val").tensors()
    cfg = TrainConfig(epochs=3, batch_size=256, lr=1e-2, patience=10, seed=3)
    t = Trainer(model, cfg, loss_fn=bce_loss, monitor=lambda m: evaluate(m, val, 3, 4096)["all"]["auc"],
                progress=False)
    t.fit(train)  # type: ignore[arg-type]
    return t


def test_streamed_training_equals_in_memory_training(planted: Prepared, tmp_path: Path) -> None:
    """Row shuffling streams the in-memory batches, so training gives the very same weights."""
    cached = load_prepared(save_prepared(tmp_path / "p", planted))
    memory = _fit(planted, planted.part("train").tensors())
    streamed = _fit(cached, TableStream(cached.table, cached.splits["train"], shuffle="rows"))
    for (k, a), b in zip(memory.model.state_dict().items(), streamed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    blocks = _fit(cached, TableStream(cached.table, cached.splits["train"], shuffle="blocks", block_rows=64,
                                      window_blocks=4))
    # block shuffling is another order, hence other weights (its own equality is the coverage test's business)
    assert any(not torch.equal(a, b) for a, b in zip(memory.model.state_dict().values(),
                                                     blocks.model.state_dict().values(), strict=True))


def test_msr_run_streams_and_learns(planted: Prepared, tmp_path: Path) -> None:
    cached = load_prepared(save_prepared(tmp_path / "p", planted))
    rows = run(MSRRun("planted", "mmoe", 0), cached, train_options={"epochs": 4, "batch_size": 256, "lr": 1e-2},
               out_dir=tmp_path / "out", progress=False, stream=True)
    test_auc = next(r.value for r in rows if (r.split, r.segment, r.metric) == ("test", "all", "auc"))
    assert test_auc > 0.7  # planted structure learned from streamed batches (0.5: chance)
    import json

    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["streamed"] is True and info["world_size"] == 1
    in_memory = run(MSRRun("planted", "mmoe", 0), cached, train_options={"epochs": 4, "batch_size": 256, "lr": 1e-2},
                    progress=False)
    mem_auc = next(r.value for r in in_memory if (r.split, r.segment, r.metric) == ("test", "all", "auc"))
    assert abs(mem_auc - test_auc) < 0.02  # block shuffling: another order, the same model quality
