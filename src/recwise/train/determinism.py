"""Deterministic mode: the same seed gives bit-identical numbers at any ``--threads``.

Why one thread
--------------
On CPU the thread count is part of the arithmetic. torch splits a reduction (a loss mean, the
gradient of a bias or an embedding table) into one chunk per thread and adds the partial sums;
BLAS blocks a matrix product by thread count; the numba Mamba scan sums the A, D and delta-bias
gradients per block of rows, with more blocks for more threads. Floating-point addition is not
associative, so two thread counts give results that differ in the last bits, and training
amplifies those bits over thousands of steps into different metrics. No setting makes torch's
multi-threaded CPU kernels order-independent, so the only way to get the same bits at any
``--threads`` is to compute each cell on one thread in a fixed order. Grids recover the
throughput by running cells side by side (Ray workers, one thread each) instead of one cell on
many threads.

What :func:`deterministic` sets inside its block (and restores on exit)
-----------------------------------------------------------------------
* ``torch.set_num_threads(1)`` (:data:`DETERMINISTIC_THREADS`);
* ``torch.use_deterministic_algorithms(True)``: an op without a deterministic implementation
  raises instead of silently varying. Every model of the msr, sequential and ctr tasks trains and
  evaluates under it on CPU (``tests/train/test_determinism.py``), so it is not ``warn_only``.
  It also fills memory from ``torch.empty`` with NaN, so a read of uninitialised memory shows;
* ``torch.backends.cudnn.deterministic = True`` and ``benchmark = False``;
* ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in ``os.environ`` when CUDA is available (cuBLAS needs it
  for deterministic products; it is read when the first cuBLAS handle is made, so enter the mode
  before the first CUDA product of the process);
* numba's thread count to 1 when numba is imported. The Mamba scan (``recwise.nn._scan_numba``)
  runs ``prange`` over blocks of batch rows, ``min(batch, 4 x numba threads)`` of them, and sums
  the A, D and delta-bias gradients per block, then across blocks: more threads, other sums. It
  sets numba's thread count from ``torch.get_num_threads()`` at every call, so at one torch thread
  it always uses the same blocks, whatever ``--threads`` was before the block.

A GPU gives bit-identical numbers from run to run under this mode, but not the same bits as the CPU.

Examples
--------
>>> from recwise.train import deterministic, determinism_info
>>> with deterministic():                                                 # doctest: +SKIP
...     result = trainer.fit(train)
>>> determinism_info()["threads"]                                         # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch

__all__ = ["DETERMINISTIC_THREADS", "determinism_info", "deterministic"]

DETERMINISTIC_THREADS = 1
CUBLAS_WORKSPACE = ":4096:8"

_depth = 0  # how many deterministic(True) blocks are open in this process


def _numba() -> ModuleType | None:
    """numba when this process has imported it (then after recwise's scan module), else None.

    Not imported means no numba code has run: the mode does not import it (about a second) for a
    model that never uses it, since the scan sets numba's thread count from torch's (1 here) at
    every call. ``numba.set_num_threads`` starts numba's thread pool, which fixes the threading
    layer; the scan module picks the light ``workqueue`` layer at import, so it is imported first.
    """
    if "numba" not in sys.modules:
        return None
    try:
        import recwise.nn._scan_numba  # noqa: F401  (side effect: numba's threading layer)
    except Exception:  # noqa: BLE001 - a broken llvmlite is not this module's concern
        pass
    return sys.modules.get("numba")


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Compute on one thread with deterministic kernels inside the block; restore everything after.

    With ``enabled=False`` it does nothing, so callers can write ``with deterministic(flag):``.
    See the module docstring for what is set and why.
    """
    global _depth
    if not enabled:
        yield
        return
    threads = torch.get_num_threads()
    algos = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_det, cudnn_bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    numba = _numba()
    numba_threads = numba.get_num_threads() if numba is not None else None
    entered = False
    try:
        torch.set_num_threads(DETERMINISTIC_THREADS)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        if torch.cuda.is_available():
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
        if numba is not None:
            numba.set_num_threads(DETERMINISTIC_THREADS)
        _depth += 1
        entered = True
        yield
    finally:
        if entered:
            _depth -= 1
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(algos, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_det, cudnn_bench
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas
        if numba is not None and numba_threads is not None:
            numba.set_num_threads(numba_threads)


def determinism_info() -> dict[str, Any]:
    """The settings that decide whether results are reproducible, as they are now.

    Keys: ``deterministic`` (inside a :func:`deterministic` block), ``threads`` (torch intra-op
    threads), ``deterministic_algorithms`` and ``warn_only`` (torch's flags), ``cudnn_deterministic``,
    ``cudnn_benchmark``, ``cublas_workspace_config`` (None when unset) and ``numba_threads`` (None
    while numba's thread pool has not started).
    """
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    pool = parallel is not None and getattr(parallel, "_is_initialized", False)  # asking starts the pool
    return {
        "deterministic": _depth > 0,
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "numba_threads": parallel.get_num_threads() if pool and parallel is not None else None,
    }
