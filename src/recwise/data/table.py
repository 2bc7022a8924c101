"""Columnar Table and the batch loader (index slices of a permutation, no per-row objects)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from recwise.data.schema import FieldKind, Schema
from recwise.errors import DataError

__all__ = ["Batch", "BatchLoader", "Table"]

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


class BatchLoader:
    """Iterate over batches of a tensor dict by slicing a permutation.

    Each epoch's order comes from its own generator seeded by ``(seed, epoch)``, so a resumed
    run sees exactly the batches an uninterrupted one would. Without ``shuffle`` batches are
    contiguous views (no copy).
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
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1; got {batch_size}")
        self.device = torch.device(device)
        self.tensors = {k: v.to(self.device) for k, v in tensors.items()}
        self.n = len(next(iter(self.tensors.values())))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        bs, n = self.batch_size, self.n
        stop = n - n % bs if self.drop_last else n
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(n, generator=g).to(self.device)
            for start in range(0, stop, bs):
                idx = perm[start : start + bs]
                yield {k: v.index_select(0, idx) for k, v in self.tensors.items()}
        else:
            for start in range(0, stop, bs):
                yield {k: v[start : start + bs] for k, v in self.tensors.items()}
