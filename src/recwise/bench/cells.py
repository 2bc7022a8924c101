"""Cell functions of the built-in benchmarks: one cell = one ``tasks.<task>.run`` call.

Each is ``fn(cell, out_dir, shared) -> list[ResultRow]`` (see :mod:`recwise.bench.grid`). A cell
continues from its checkpoint when one is there (a retried or re-run cell does not start over),
and starts over when the checkpoint belongs to other options.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recwise.bench.grid import Cell
from recwise.errors import CheckpointError
from recwise.results import ResultRow

__all__ = ["msr_cell", "seq_cell"]


def _resume_or_restart(out_dir: Path, call: Callable[[bool], list[ResultRow]]) -> list[ResultRow]:
    try:
        return call((out_dir / "checkpoint").exists())
    except CheckpointError:  # options changed since the checkpoint: start the cell over
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
        return call(False)


def msr_cell(cell: Cell, out_dir: Path, shared: Any) -> list[ResultRow]:
    """Multi-scenario CTR. ``shared``: the Prepared dataset; options: train, model, split_seed."""
    from recwise.tasks import msr  # looked up at call time (tests replace msr.run)

    o = cell.options
    run = msr.MSRRun(cell.dataset, cell.model, cell.seed, split_seed=o.get("split_seed", 2022))
    return _resume_or_restart(out_dir, lambda resume: msr.run(
        run, shared, train_options=o.get("train"), model_options=o.get("model"), out_dir=out_dir, resume=resume,
        progress=False))


def seq_cell(cell: Cell, out_dir: Path, shared: Any) -> list[ResultRow]:
    """Sequential recommendation. ``shared``: the Sequences; options: train, model, data, max_len, data_key."""
    from recwise.tasks import sequential

    o = cell.options
    run = sequential.SeqRun(cell.dataset, cell.model, cell.seed)
    return _resume_or_restart(out_dir, lambda resume: sequential.run(
        run, shared, dataset_max_len=o.get("max_len", 50), train_options=o.get("train"), model_options=o.get("model"),
        data_options=o.get("data"), out_dir=out_dir, resume=resume, progress=False, data_key=o.get("data_key")))
