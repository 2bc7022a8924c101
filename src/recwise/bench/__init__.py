"""Experiment grids: cells, the runner and its executors (see :mod:`recwise.bench.grid`)."""

from recwise.bench.grid import Cell, CellRecord, GridResult, add_grid_arguments, grid_options, run_grid

__all__ = ["Cell", "CellRecord", "GridResult", "add_grid_arguments", "grid_options", "run_grid"]
