"""Columnar Table and the batch loaders (index slices of a permutation, no per-row objects).

``BatchLoader`` slices tensors already in memory. ``TableStream`` / ``StreamLoader`` read each
batch's rows straight from the Table's (memory-mapped) columns, for data larger than memory.
Both can give each process of a ``torch.distributed`` job its share of every batch.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from recwise.data.schema import FieldKind, Schema
from recwise.errors import DataError

__all__ = ["Batch", "BatchLoader", "StreamLoader", "Table", "TableStream"]

Batch = dict[str, torch.Tensor]
"""A batch: ``sparse`` (B, F) int64, ``dense`` (B, D) float32, ``scenario`` (B,) int64, ``label`` (B,) float32."""


@dataclass
class Table:
    """Columns held as contiguous numpy arrays (possibly memory-mapped), described by ``schema``."""

    schema: Schema
    columns: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        lengths = {name: len(col) for name, col in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"table columns differ in length: {lengths}")
        for f in self.schema.fields:
            if f.name not in self.columns:
                raise DataError(f"table has no column for schema field '{f.name}'")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def take(self, idx: np.ndarray) -> Table:
        return Table(self.schema, {k: np.asarray(v[idx]) for k, v in self.columns.items()})

    def select(self, names: list[str]) -> Table:
        """Keep only the named feature fields (label and scenario stay)."""
        schema = self.schema.select(names)
        return Table(schema, {f.name: self.columns[f.name] for f in schema.fields})

    def stream(self, rows: np.ndarray | None = None, **options: object) -> TableStream:
        """These columns read batch by batch instead of stacked in memory (see TableStream)."""
        return TableStream(self, rows, **options)  # type: ignore[arg-type]

    def tensors(self) -> Batch:
        """Stack the columns by kind into the tensors a Batch holds (one copy, done once)."""
        s = self.schema
        n = len(self)
        out: Batch = {}
        if s.sparse:
            out["sparse"] = torch.from_numpy(
                np.stack([np.asarray(self.columns[f.name], dtype=np.int64) for f in s.sparse], axis=1)
            )
        if s.dense:
            out["dense"] = torch.from_numpy(
                np.stack([np.asarray(self.columns[f.name], dtype=np.float32) for f in s.dense], axis=1)
            )
        sc = s.scenario
        out["scenario"] = (
            torch.from_numpy(np.asarray(self.columns[sc.name], dtype=np.int64).copy())
            if sc is not None
            else torch.zeros(n, dtype=torch.int64)
        )
        out["label"] = torch.from_numpy(np.asarray(self.columns[s.label.name], dtype=np.float32).copy())
        for f in s.of(FieldKind.SEQUENCE):
            out[f.name] = torch.from_numpy(np.asarray(self.columns[f.name], dtype=np.int64))
        return out


def _n_batches(n: int, batch_size: int, drop_last: bool, world_size: int) -> int:
    """Batches per epoch; with several processes a last batch too small to give each one a row is dropped."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and not drop_last and rest >= world_size else 0)


def _check_shard(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(f"rank must be in 0..world_size-1; got rank {rank}, world_size {world_size}")


class BatchLoader:
    """Iterate over batches of a tensor dict by slicing a permutation.

    Each epoch's order comes from its own generator seeded by ``(seed, epoch)``, so a resumed
    run sees exactly the batches an uninterrupted one would. Without ``shuffle`` batches are
    contiguous views (no copy). With ``world_size`` > 1 every process walks the same batches
    and keeps its ``rank``-th share of each (``torch.tensor_split``), so the processes together
    see what one process would; ``global_rows`` is the size of the whole batch last yielded.
    """

    def __init__(
        self,
        tensors: Batch,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1; got {batch_size}")
        _check_shard(rank, world_size)
        self.device = torch.device(device)
        self.tensors = {k: v.to(self.device) for k, v in tensors.items()}
        self.n = len(next(iter(self.tensors.values())))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.global_rows = 0
        self.epoch = 0

    def __len__(self) -> int:
        return _n_batches(self.n, self.batch_size, self.drop_last, self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        bs, n = self.batch_size, self.n
        stop = n - n % bs if self.drop_last else n
        if self.world_size > 1:
            yield from self._shards(stop)
            return
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(n, generator=g).to(self.device)
            for start in range(0, stop, bs):
                idx = perm[start : start + bs]
                self.global_rows = len(idx)
                yield {k: v.index_select(0, idx) for k, v in self.tensors.items()}
        else:
            for start in range(0, stop, bs):
                self.global_rows = min(bs, n - start)
                yield {k: v[start : start + bs] for k, v in self.tensors.items()}

    def _shards(self, stop: int) -> Iterator[Batch]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).to(self.device)
        else:
            order = torch.arange(self.n, device=self.device)
        for start in range(0, stop, self.batch_size):
            idx = order[start : start + self.batch_size]
            if len(idx) < self.world_size:
                break
            self.global_rows = len(idx)
            mine = idx.tensor_split(self.world_size)[self.rank]
            yield {k: v.index_select(0, mine) for k, v in self.tensors.items()}


Shuffle = Literal["rows", "blocks"]


@dataclass
class TableStream:
    """A Table read batch by batch from its columns (memory-mapped when loaded from the cache).

    Nothing is copied up front: each batch gathers its rows from the columns, so memory holds
    one batch, not the table. ``rows`` picks the rows to stream (e.g. a split's sorted indices;
    None: all). How an epoch is shuffled:

    - ``"rows"``: a uniform permutation of the rows, the very one ``BatchLoader`` draws for the
      same ``(seed, epoch)``, so a streamed run trains on the same batches as an in-memory one.
      Each batch is a gather of scattered rows (done in sorted order, then put back in
      permutation order): fast while the columns sit in the page cache.
    - ``"blocks"`` (for data larger than memory): the rows, in file order, are cut into blocks of
      ``block_rows`` consecutive rows; each epoch permutes the blocks, takes them
      ``window_blocks`` at a time and permutes the rows within each such window. Every row still
      comes exactly once per epoch, and the file is read in runs of ``block_rows`` rows. A
      window is copied into memory column by column and the mapped pages are handed back to the
      kernel (they stay in the page cache), so the resident size is about one window
      (``block_rows * window_blocks`` rows), however large the file.

    "rows" leaves the pages it touches mapped until the epoch ends: it suits tables that fit in
    memory, where it reproduces in-memory training exactly.
    """

    table: Table
    rows: np.ndarray | None = None
    shuffle: Shuffle = "blocks"
    block_rows: int = 1 << 16
    window_blocks: int = 8

    def __post_init__(self) -> None:
        if self.shuffle not in ("rows", "blocks"):
            raise DataError(f"stream shuffle must be 'rows' or 'blocks'; got {self.shuffle!r}")
        if self.block_rows < 1 or self.window_blocks < 1:
            raise DataError(f"block_rows and window_blocks must be >= 1; got {self.block_rows}, {self.window_blocks}")
        if self.rows is not None:
            rows = np.asarray(self.rows)
            if rows.ndim != 1 or (len(rows) and not np.issubdtype(rows.dtype, np.integer)):
                raise DataError(f"stream rows must be a 1-D integer array; got shape {rows.shape}, {rows.dtype}")
            if len(rows) and (rows.min() < 0 or rows.max() >= len(self.table)):
                raise DataError(f"stream rows must lie in 0..{len(self.table) - 1}; got {rows.min()}..{rows.max()}")
            self.rows = rows.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return len(self.table) if self.rows is None else len(self.rows)

    def column(self, name: str) -> np.ndarray:
        """One column's values for the streamed rows, in row order (a copy)."""
        col = self.table.columns[name]
        return np.array(col if self.rows is None else col[self.rows])

    def loader(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> StreamLoader:
        return StreamLoader(self, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, device=device,
                            rank=rank, world_size=world_size)


class StreamLoader:
    """Batches of a TableStream: the same interface as BatchLoader (``n``, ``len``, ``set_epoch``, iteration).

    Without ``shuffle`` rows come in order (contiguous slices when all rows are streamed). With
    ``world_size`` > 1 every process walks the same epoch order and gathers only its
    ``rank``-th share of each batch.
    """

    def __init__(
        self,
        stream: TableStream,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1; got {batch_size}")
        _check_shard(rank, world_size)
        self.stream = stream
        self.schema = stream.table.schema
        self.n = len(stream)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.rank, self.world_size = rank, world_size
        self.global_rows = 0
        self.epoch = 0
        maps = {id(m): m for c in stream.table.columns.values() if (m := _readonly_map(c)) is not None}
        self._maps = list(maps.values())

    def __len__(self) -> int:
        return _n_batches(self.n, self.batch_size, self.drop_last, self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        if self.shuffle and self.stream.shuffle == "blocks":
            yield from self._windows()
            return
        bs, n = self.batch_size, self.n
        if self.shuffle:  # "rows": BatchLoader's permutation, so both loaders give the same batches
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            chunks: Iterator[np.ndarray] = iter([torch.randperm(n, generator=g).numpy()])
        else:  # file order, a window's worth of rows at a time
            step = max(self.stream.block_rows * self.stream.window_blocks // bs, 1) * bs
            chunks = (np.arange(start, min(start + step, n)) for start in range(0, n, step))
        left = np.zeros(0, dtype=np.int64)
        for chunk in chunks:
            pos = np.concatenate([left, chunk]) if len(left) else chunk
            full = len(pos) - len(pos) % bs
            for start in range(0, full, bs):
                yield self._batch(self.stream.table, self._rows(pos[start : start + bs]))
            left = pos[full:]
            self.release()
        if len(left) and not self.drop_last and len(left) >= self.world_size:
            yield self._batch(self.stream.table, self._rows(left))
        self.release()

    def _rows(self, pos: np.ndarray) -> np.ndarray:
        return pos if self.stream.rows is None else self.stream.rows[pos]

    def _windows(self) -> Iterator[Batch]:
        """Block shuffling: permute the blocks, read a window of them into batch tensors, permute its rows."""
        s, bs, n = self.stream, self.batch_size, self.n
        rng = np.random.default_rng([self.seed, self.epoch])
        n_blocks = -(-n // s.block_rows)
        blocks = rng.permutation(n_blocks)
        carry: Batch | None = None
        for w in range(0, n_blocks, s.window_blocks):
            ranges = [(b * s.block_rows, min((b + 1) * s.block_rows, n)) for b in blocks[w : w + s.window_blocks]]
            window = self._read(ranges, carry)  # the rows left over from the last window come first
            kept = 0 if carry is None else len(carry["label"])
            order = torch.cat([torch.arange(kept),
                               kept + torch.from_numpy(rng.permutation(len(window["label"]) - kept))])
            full = len(order) - len(order) % bs
            for start in range(0, full, bs):
                yield self._take(window, order[start : start + bs])
            carry = {k: v.index_select(0, order[full:]) for k, v in window.items()}
            del window  # before the next window is read: one window in memory at a time
        if carry is not None and len(carry["label"]) and not self.drop_last and len(carry["label"]) >= self.world_size:
            yield self._take(carry, torch.arange(len(carry["label"])))

    def _take(self, window: Batch, pos: torch.Tensor) -> Batch:
        self.global_rows = len(pos)
        if self.world_size > 1:
            pos = pos.tensor_split(self.world_size)[self.rank]
        return {k: v.index_select(0, pos).to(self.device) for k, v in window.items()}

    def _read(self, ranges: list[tuple[int, int]], head: Batch | None) -> Batch:
        """``head``'s rows, then the blocks' rows (in block order) as batch tensors, read column by column
        straight into place; the mapped pages are released after each column."""
        schema, table, rows = self.schema, self.stream.table, self.stream.rows
        kept = 0 if head is None else len(head["label"])
        n = kept + sum(b - a for a, b in ranges)

        def fill(dst: np.ndarray, name: str) -> np.ndarray:
            col, at = table.columns[name], kept
            for a, b in ranges:
                dst[at : at + b - a] = col[a:b] if rows is None else col[rows[a:b]]
                at += b - a
            if (m := _readonly_map(col)) is not None:
                _dontneed(m)
            return dst

        def stacked(fields: tuple, dtype: type) -> torch.Tensor:
            out: np.ndarray = np.empty((n, len(fields)), dtype=dtype)
            for j, f in enumerate(fields):
                fill(out[:, j], f.name)
            return torch.from_numpy(out)

        def single(name: str, dtype: type) -> torch.Tensor:
            col = table.columns[name]
            return torch.from_numpy(fill(np.empty((n, *col.shape[1:]), dtype=dtype), name))

        out: Batch = {}
        if schema.sparse:
            out["sparse"] = stacked(schema.sparse, np.int64)
        if schema.dense:
            out["dense"] = stacked(schema.dense, np.float32)
        sc = schema.scenario
        out["scenario"] = single(sc.name, np.int64) if sc is not None else torch.zeros(n, dtype=torch.int64)
        out["label"] = single(schema.label.name, np.float32)
        for f in schema.of(FieldKind.SEQUENCE):
            out[f.name] = single(f.name, np.int64)
        if head is not None:
            for k, v in head.items():
                out[k][:kept] = v
        return out

    def release(self) -> None:
        """Hand the mapped pages back (they stay in the page cache); the next read maps them again."""
        for m in self._maps:
            _dontneed(m)

    def _batch(self, table: Table, pos: np.ndarray) -> Batch:
        self.global_rows = len(pos)
        if self.world_size > 1:
            pos = np.array_split(pos, self.world_size)[self.rank]
        return {k: v.to(self.device) for k, v in gather(table, pos).items()}


def _readonly_map(col: np.ndarray) -> mmap.mmap | None:
    """The read-only memory map under a column, if any (writable or copy-on-write maps are left alone:
    dropping their pages could lose writes)."""
    return getattr(col, "_mmap", None) if isinstance(col, np.memmap) and col.mode == "r" else None


def _dontneed(m: mmap.mmap) -> None:
    try:
        m.madvise(mmap.MADV_DONTNEED)
    except (ValueError, OSError, AttributeError):  # a closed map, or a platform without madvise
        pass


def gather(table: Table, idx: np.ndarray) -> Batch:
    """The Batch of ``table``'s rows ``idx`` (any order), read in ascending row order.

    The same tensors, dtypes and layout as ``table.take(idx).tensors()``, without the
    intermediate Table. A contiguous ascending ``idx`` is read as a slice.
    """
    s = table.schema
    n = len(idx)
    read: slice | np.ndarray
    if n and idx[-1] - idx[0] == n - 1 and (n == 1 or bool(np.all(np.diff(idx) == 1))):
        read, order = slice(int(idx[0]), int(idx[0]) + n), None
    else:
        order = np.argsort(idx, kind="stable")
        read = idx[order]

    def stacked(fields: tuple, dtype: type) -> torch.Tensor:
        out: np.ndarray = np.empty((n, len(fields)), dtype=dtype)
        for j, f in enumerate(fields):
            out[:, j] = table.columns[f.name][read]
        return torch.from_numpy(out if order is None else _unsort(out, order))

    def single(name: str, dtype: type) -> torch.Tensor:
        return torch.from_numpy(_unsort(np.asarray(table.columns[name][read], dtype=dtype), order))

    out: Batch = {}
    if s.sparse:
        out["sparse"] = stacked(s.sparse, np.int64)
    if s.dense:
        out["dense"] = stacked(s.dense, np.float32)
    sc = s.scenario
    out["scenario"] = single(sc.name, np.int64) if sc is not None else torch.zeros(n, dtype=torch.int64)
    out["label"] = single(s.label.name, np.float32)
    for f in s.of(FieldKind.SEQUENCE):
        out[f.name] = single(f.name, np.int64)
    return out


def _unsort(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """Rows read in sorted order back into the order asked for (a fresh, writable array)."""
    if order is None:
        return np.array(values)  # slices of a read-only map: copy
    out = np.empty_like(values)
    out[order] = values
    return out
