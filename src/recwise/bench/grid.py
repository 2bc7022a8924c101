"""Experiment grids: many cells, one runner, two executors, resumable.

A grid is a list of :class:`Cell` s (task, dataset, model, seed, options). Each cell is run by a
*cell function* and gives :class:`~recwise.results.ResultRow` s. :func:`run_grid` runs the cells
that are missing or failed, in-process (``executor="local"``) or as Ray tasks (``"ray"``), and
writes what it learned into one output folder::

    out/
      results.csv              rows of every finished cell, in grid order
      failures.json            the failed cells of the last run ([] when none)
      cells/<model>[/<tag>]/seed<k>/
        cell.json              key, status, attempts, wall time, peak RSS, reason of a failure
        results.csv            the cell's rows (written by the runner from the rows it got back)
        error.txt              reason and traceback of a failed cell
        ...                    whatever the cell function writes (run.json, checkpoint/, model)

API (what a ``bench <task>`` command needs)::

    from recwise.bench import Cell, run_grid

    def my_cell(cell: Cell, out_dir: Path, shared) -> list[ResultRow]:   # module level: Ray pickles it
        ...                                                               # by reference

    cells = [Cell("msr", "ml-100k", m, s, options={...}) for m in models for s in range(3)]
    res = run_grid(cells, my_cell, out, shared=prepared, executor="local", quiet=False)
    res.rows, res.ran, res.reused, res.failed        # failed: list of CellRecord (reason, attempts)

* **Key.** ``Cell.key`` is a hash of (task, dataset, model, seed, tag, options). A cell is *done* when
  its ``cell.json`` says ``done`` with the same key; anything else (missing, failed, stale key) runs
  again. Put everything that changes the numbers into ``options`` (resolved configs, data key).
* **Shared data.** ``shared`` is handed to every call. Under Ray it is put in the object store
  once (numpy arrays are then read zero-copy, read-only); for data larger than memory pass a path
  or loader and open it inside the cell function.
* **Faults.** An exception inside a cell fails that cell at once (it would fail again the same
  way), except :class:`~recwise.errors.ConfigError`, which stops the grid. A worker *process* that
  dies mid-cell (killed, out of memory, segfault; Ray executor) is retried once, then the cell is
  marked failed with the reason. The grid always finishes the other cells.
* **Threads.** ``threads`` sets ``torch.set_num_threads`` inside each cell (default: unchanged
  under ``local``, 1 under Ray, where each cell also reserves that many Ray CPUs). ``gpus`` is
  the GPUs a Ray cell reserves (default 0: Ray hides the GPUs, the cell trains on CPU).
* **Measures.** Each cell's wall time and peak RSS (the cell's own high-water mark where Linux lets
  the runner reset it, else the process's) go to ``cell.json`` and to the results store.
* **Store.** After each finished cell the runner appends its rows to the results store
  (:mod:`recwise.store`, when that module is present) with meta: config hash (the cell key),
  package version, git commit, wall seconds, peak RSS.

CLI commands add the shared flags with :func:`add_grid_arguments` and pass
:func:`grid_options` (args) to :func:`run_grid`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from recwise.config import config_hash
from recwise.errors import ConfigError, DataError, DependencyError
from recwise.provenance import provenance
from recwise.results import ResultRow, atomic_write_text, read_results, stamp_run_json, write_results

__all__ = ["Cell", "CellRecord", "GridResult", "LocalExecutor", "RayExecutor", "add_grid_arguments",
           "grid_options", "run_grid"]

CellFn = Callable[["Cell", Path, Any], list[ResultRow]]
MAX_ATTEMPTS = 2  # a cell whose worker died is tried once more


@dataclass(frozen=True)
class Cell:
    """One experiment: a task's model on a dataset with a seed and options.

    ``options`` is whatever the cell function needs (config overrides or resolved configs); it is
    part of the key, so it must be JSON-serialisable. ``tag`` tells apart cells that share model
    and seed (``k=8``, a dataset name) and becomes a folder level.
    """

    task: str
    dataset: str
    model: str
    seed: int
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    tag: str = ""

    @property
    def key(self) -> str:
        return config_hash({"task": self.task, "dataset": self.dataset, "model": self.model, "seed": self.seed,
                            "tag": self.tag, "options": self.options})

    @property
    def path(self) -> str:
        """The cell's folder under ``out/cells``."""
        return "/".join([self.model, *([self.tag] if self.tag else []), f"seed{self.seed}"])

    @property
    def title(self) -> str:
        return f"{self.model}{' ' + self.tag if self.tag else ''} seed {self.seed}"


@dataclass
class CellRecord:
    """What the runner knows about one cell after a run (also its ``cell.json``)."""

    key: str
    task: str
    dataset: str
    model: str
    seed: int
    tag: str
    path: str
    status: Literal["done", "failed"]
    attempts: int = 0
    reason: str = ""
    wall_seconds: float = float("nan")
    peak_rss_mb: float = float("nan")
    rss_scope: str = ""  # "cell": the cell's own peak; "process": the worker process's peak so far
    executor: str = ""
    host: str = ""
    finished_at: str = ""
    threads: int | None = None  # torch threads the cell computed with
    deterministic: bool = False
    git_commit: str | None = None

    @property
    def title(self) -> str:
        return f"{self.model}{' ' + self.tag if self.tag else ''} seed {self.seed}"


@dataclass
class GridResult:
    rows: list[ResultRow]
    records: list[CellRecord]  # grid order; reused cells included
    ran: int
    reused: int
    failed: list[CellRecord]
    wall_seconds: float
    not_run: int = 0  # cells left out by ``finished_only``
    outside: list[str] = field(default_factory=list)  # finished cells in ``out`` that are not in this grid


@dataclass
class _Outcome:
    status: Literal["done", "error", "crashed"]
    rows: list[ResultRow] = field(default_factory=list)
    measures: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    trace: str = ""


# ---------------------------------------------------------------------------------------------
# running one cell (in the driver for `local`, in a worker for `ray`)


def _reset_peak_rss() -> str:
    """Reset this process's RSS high-water mark (Linux ``clear_refs``); the scope the peak will have."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return "cell"
    except OSError:
        return "process"


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def execute_cell(fn: CellFn, cell: Cell, out_dir: str, shared: Any, threads: int | None,
                 deterministic: bool = False) -> dict[str, Any]:
    """Run one cell and measure it; returns rows and measures. Exceptions propagate.

    ``deterministic``: compute inside :func:`recwise.train.determinism.deterministic` (one thread,
    deterministic algorithms), so the numbers do not depend on ``threads`` or the executor.
    """
    import torch

    from recwise.train.determinism import deterministic as deterministic_mode

    if threads is not None:
        torch.set_num_threads(threads)
    scope = _reset_peak_rss()
    t0 = time.perf_counter()
    with deterministic_mode(deterministic):
        used_threads = torch.get_num_threads()
        rows = fn(cell, Path(out_dir), shared)
    wall = time.perf_counter() - t0
    if not isinstance(rows, list) or not all(isinstance(r, ResultRow) for r in rows):
        raise TypeError(f"cell function {getattr(fn, '__name__', fn)!r} must return a list of ResultRow")
    return {"rows": rows, "measures": {"wall_seconds": wall, "peak_rss_mb": _peak_rss_mb(), "rss_scope": scope,
                                       "host": socket.gethostname(), "pid": os.getpid(),
                                       "threads": used_threads}}


def _reason(exc: BaseException) -> str:
    return (f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__])[0]


# ---------------------------------------------------------------------------------------------
# executors


@dataclass
class _Job:
    index: int
    cell: Cell
    out_dir: Path
    attempt: int = 1


class Executor(Protocol):
    name: str
    slots: int  # cells that can run at once

    def submit(self, job: _Job) -> None: ...
    def next_done(self, notify: Callable[[_Job | None], None]) -> tuple[_Job, _Outcome]:
        """Wait for a cell to finish; call ``notify(job)`` when a cell starts, ``notify(None)`` while waiting."""
        ...
    def close(self) -> None: ...


class LocalExecutor:
    """Runs cells one after another in this process (a dying cell takes the grid with it; re-run to resume)."""

    name = "local"
    slots = 1

    def __init__(self, fn: CellFn, shared: Any, threads: int | None = None, deterministic: bool = False) -> None:
        self.fn, self.shared, self.threads, self.deterministic = fn, shared, threads, deterministic
        self._queue: deque[_Job] = deque()

    def submit(self, job: _Job) -> None:
        self._queue.append(job)

    def next_done(self, notify: Callable[[_Job | None], None]) -> tuple[_Job, _Outcome]:
        job = self._queue.popleft()
        notify(job)
        try:
            out = execute_cell(self.fn, job.cell, str(job.out_dir), self.shared, self.threads, self.deterministic)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the cell failed; the grid goes on
            return job, _Outcome("error", reason=_reason(exc), trace=traceback.format_exc())
        return job, _Outcome("done", out["rows"], out["measures"])

    def close(self) -> None:
        self._queue.clear()


def _check_reachable(address: str) -> None:
    """Fail fast on a ``HOST:PORT`` nothing listens on (``ray.init`` would wait for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        if address != "auto" and "://" not in address:
            raise ConfigError(f"option --address must be HOST:PORT (or auto, or ray://HOST:PORT); got {address!r}")
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"option --address: nothing answers at {address} ({exc.strerror or exc}); start a Ray "
                          f"head there with `ray start --head --port {port}`") from None


class RayExecutor:
    """Runs cells as Ray tasks: a local Ray started here, the one already running, or a cluster."""

    name = "ray"

    def __init__(self, fn: CellFn, shared: Any, threads: int | None = None, *, address: str | None = None,
                 workers: int | None = None, gpus: float = 0.0, deterministic: bool = False) -> None:
        try:
            import ray
        except ImportError:
            raise DependencyError("--executor ray needs Ray: pip install 'recwise[grid]'") from None
        import logging

        self.ray = ray
        self.threads = 1 if threads is None else threads
        self.deterministic = deterministic
        self._started = False
        self._temp_dir: str | None = None
        if address is not None:
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"option --address: cannot connect to a Ray cluster at {address!r} "
                                  f"({_reason(exc)}); start one with `ray start --head`") from None
            self._started = True
        elif not ray.is_initialized():
            # a short folder: Ray's unix sockets live under it and their paths are limited to ~100 bytes
            self._temp_dir = tempfile.mkdtemp(prefix="rwray-", dir="/tmp" if os.path.isdir("/tmp") else None)
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, _temp_dir=self._temp_dir,
                     log_to_driver=False, logging_level=logging.WARNING)
            self._started = True
        self._pending: dict[Any, _Job] = {}
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self.slots = max(1, cpus // max(self.threads, 1))
            self._shared_ref = ray.put(shared)
        except BaseException:
            self.close()
            raise
        self._fn = fn
        # max_retries=0: the runner retries a dead worker itself (once), the same way for every executor
        self._remote = ray.remote(execute_cell).options(num_cpus=self.threads, num_gpus=gpus, max_retries=0)

    def submit(self, job: _Job) -> None:
        ref = self._remote.remote(self._fn, job.cell, str(job.out_dir), self._shared_ref, self.threads,
                                  self.deterministic)
        self._pending[ref] = job

    def next_done(self, notify: Callable[[_Job | None], None]) -> tuple[_Job, _Outcome]:
        ray = self.ray
        ready: list[Any] = []
        while not ready:
            ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=1.0)
            notify(None)  # keeps the progress bar's clock moving
        ref = ready[0]
        job = self._pending.pop(ref)
        try:
            out = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the cell raised: its own exception, not a lost worker
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, ConfigError):
                raise cause from None
            return job, _Outcome("error", reason=_reason(cause), trace=str(exc))
        except ray.exceptions.RayError as exc:  # the worker died (killed, OOM, node lost)
            return job, _Outcome("crashed", reason=f"worker died: {_reason(exc)}", trace=str(exc))
        return job, _Outcome("done", out["rows"], out["measures"])

    @property
    def running(self) -> int:
        return min(len(self._pending), self.slots)

    def close(self) -> None:
        for ref in self._pending:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        self._pending.clear()
        if self._started:
            self.ray.shutdown()
        if self._temp_dir is not None:
            import shutil

            shutil.rmtree(self._temp_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the runner


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a half-written or damaged record: the cell simply runs again


def _open_store(store: Path | str | None | Literal[False]) -> Any:
    """The results store rows are appended to after each cell, or None.

    STORE HOOK: the one place the runner touches :mod:`recwise.store` (written by the report helper).
    """
    if store is False:
        return None
    try:
        from recwise.store import ResultStore
    except ImportError:
        return None
    db = ResultStore(store) if store is not None else ResultStore()
    db.count()  # a damaged store is reported now, not after the first cell has trained
    return db


def run_grid(
    cells: Sequence[Cell],
    fn: CellFn,
    out: Path,
    *,
    shared: Any = None,
    executor: Literal["local", "ray"] | Executor = "local",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    gpus: float = 0.0,
    store: Path | str | None | Literal[False] = None,
    quiet: bool = False,
    deterministic: bool = False,
    finished_only: bool = False,
) -> GridResult:
    """Run the missing or failed cells of a grid; write ``results.csv`` and ``failures.json`` in ``out``.

    Parameters
    ----------
    cells : the grid, in the order rows are written.
    fn : ``fn(cell, out_dir, shared) -> list[ResultRow]``, a module-level function.
    out : output folder (see the module docstring for its layout).
    shared : data every cell reads (put in Ray's object store once).
    executor : ``"local"`` (in this process, one cell at a time) or ``"ray"``.
    address : Ray cluster ``HOST:PORT`` (default: start a local Ray, or use the one running).
    workers : CPUs of a local Ray (default: all cores).
    threads : torch threads per cell (default: unchanged locally, 1 under Ray).
    gpus : GPUs each Ray cell reserves (a fraction shares one); with 0 Ray hides the GPUs from the cell.
    store : results store path; None for the store's default, False for none.
    quiet : no progress bar.
    deterministic : run every cell in deterministic mode (one thread, deterministic algorithms):
        the same numbers whatever ``threads`` and the executor.
    finished_only : run nothing: ``results.csv`` (and the result) hold the cells already done. The
        partial table of a long grid while other processes run its cells; ``failures.json`` is left
        as it is.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    out = Path(out)
    by_path: dict[str, Cell] = {}
    for c in cells:
        if c.path in by_path:
            raise ConfigError(f"grid cells {by_path[c.path].title!r} and {c.title!r} share the folder "
                              f"cells/{c.path}; give them different tags")
        by_path[c.path] = c
    if executor != "ray" and address is not None:
        raise ConfigError("option --address needs --executor ray")

    records: list[CellRecord | None] = [None] * len(cells)
    rows_of: list[list[ResultRow]] = [[] for _ in cells]
    todo: list[int] = []
    for i, c in enumerate(cells):
        cdir = out / "cells" / c.path
        rec = _read_record(cdir / "cell.json")
        if (rec is not None and rec.get("status") == "done" and rec.get("key") == c.key
                and (cdir / "results.csv").exists()):
            try:
                rows_of[i] = read_results(cdir / "results.csv")
            except DataError:
                todo.append(i)
                continue
            records[i] = CellRecord(**{k: v for k, v in rec.items() if k in CellRecord.__dataclass_fields__})
        else:
            todo.append(i)
    reused = len(cells) - len(todo)
    not_run = 0
    if finished_only:
        not_run, todo = len(todo), []

    ex: Executor
    if isinstance(executor, str):
        if executor == "local":
            ex = LocalExecutor(fn, shared, threads, deterministic)
        elif executor == "ray":
            # nothing to run: no need to start Ray
            ex = RayExecutor(fn, shared, threads, address=address, workers=workers, gpus=gpus,
                             deterministic=deterministic) if todo \
                else LocalExecutor(fn, shared, threads, deterministic)
        else:
            raise ConfigError(f"option --executor must be 'local' or 'ray'; got {executor!r}")
    else:
        ex = executor
    db = _open_store(store) if todo else None
    prov = provenance(executor=ex.name, deterministic=deterministic)
    from recwise.store import provenance_meta

    # the store's meta without "threads": each finished cell adds the threads it computed with
    base_meta = {**{k: v for k, v in provenance_meta(prov).items() if k != "threads"}, "source": f"grid:{out}"}

    bar = tqdm(total=len(cells), initial=reused, desc="cells", unit="cell", disable=quiet, dynamic_ncols=True)
    failed: list[CellRecord] = []
    n_done = 0

    def show(now: str = "") -> None:
        running = getattr(ex, "running", 1 if now else 0)
        bar.set_postfix_str(f"done={reused + n_done} failed={len(failed)} running={running}"
                            + (f" [{now}]" if now else ""), refresh=True)

    def finish(job: _Job, outcome: _Outcome) -> None:
        nonlocal n_done
        c, cdir = job.cell, job.out_dir
        meta = {**base_meta, "config_hash": c.key}
        rec = CellRecord(c.key, c.task, c.dataset, c.model, c.seed, c.tag, c.path,
                         "done" if outcome.status == "done" else "failed", attempts=job.attempt,
                         reason=outcome.reason, executor=ex.name, deterministic=deterministic,
                         git_commit=prov["git_commit"],
                         finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        for k in ("wall_seconds", "peak_rss_mb", "rss_scope", "host", "threads"):
            if k in outcome.measures:
                setattr(rec, k, outcome.measures[k])
        cdir.mkdir(parents=True, exist_ok=True)
        if outcome.status == "done":
            rows_of[job.index] = outcome.rows
            write_results(cdir / "results.csv", outcome.rows)
            stamp_run_json(cdir / "run.json", {**prov, "threads": rec.threads, "host": rec.host})
            (cdir / "error.txt").unlink(missing_ok=True)
            n_done += 1
            if db is not None:  # STORE HOOK (see _open_store)
                db.append(outcome.rows, {**meta, "wall_seconds": rec.wall_seconds,
                                         "peak_rss_mb": rec.peak_rss_mb, "host": rec.host, "threads": rec.threads})
        else:
            atomic_write_text(cdir / "error.txt", f"{outcome.reason}\n\n{outcome.trace}")
            failed.append(rec)
            if db is not None:  # STORE HOOK
                db.append_failure(c.task, c.dataset, c.model, c.seed, outcome.reason, meta)
            if not quiet:
                bar.clear()
            print(f"recwise: cell {c.title} failed: {outcome.reason}", file=sys.stderr)
        atomic_write_text(cdir / "cell.json", json.dumps(asdict(rec), indent=1))
        records[job.index] = rec
        bar.update(1)

    try:
        for i in todo:
            ex.submit(_Job(i, cells[i], out / "cells" / cells[i].path))
        left = len(todo)
        show()
        while left:
            job, outcome = ex.next_done(lambda j: show(j.cell.title) if j is not None else bar.refresh())
            if outcome.status == "crashed" and job.attempt < MAX_ATTEMPTS:
                if not quiet:
                    bar.write(f"recwise: cell {job.cell.title}: {outcome.reason}; retrying")
                ex.submit(_Job(job.index, job.cell, job.out_dir, job.attempt + 1))
                continue
            if outcome.status == "crashed":
                outcome.reason += f" (tried {job.attempt} times)"
            finish(job, outcome)
            left -= 1
            show()
    finally:
        bar.close()
        ex.close()

    rows = [r for rs in rows_of for r in rs]
    write_results(out / "results.csv", rows)
    if not finished_only:
        atomic_write_text(out / "failures.json", json.dumps([asdict(f) for f in failed], indent=1) + "\n")
    return GridResult(rows, [r for r in records if r is not None], len(todo) - len(failed), reused, failed,
                      time.perf_counter() - t_start, not_run, _done_outside(out, by_path))


def _done_outside(out: Path, grid_paths: dict[str, Cell]) -> list[str]:
    """Cell folders under ``out/cells`` that say ``done`` but are not cells of this grid.

    A run of part of a grid (``--models M --seeds 1-1`` into the folder of the whole grid) tables only its
    own cells; the CLI names these so that nobody takes the smaller table for the folder's.
    """
    found = []
    for rec_path in sorted((out / "cells").glob("**/cell.json")):
        rel = rec_path.parent.relative_to(out / "cells").as_posix()
        if rel not in grid_paths and (_read_record(rec_path) or {}).get("status") == "done":
            found.append(rel)
    return found


# ---------------------------------------------------------------------------------------------
# CLI glue shared by every `recwise bench <task>`


def add_grid_arguments(q: argparse.ArgumentParser) -> None:
    """Add ``--executor``, ``--address``, ``--workers``, ``--cell-threads``, ``--cell-gpus``, ``--finished-only``
    and ``--store``."""
    g = q.add_argument_group("grid execution")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: cells one by one in this process (default); ray: cells as Ray tasks")
    g.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="Ray cluster to run on (default: start a local Ray; needs --executor ray)")
    g.add_argument("--workers", type=int, default=None,
                   help="CPUs of the local Ray (default: all cores); cells at once = workers / cell threads")
    g.add_argument("--cell-threads", type=int, default=None,
                   help="torch threads inside each cell (default: --threads locally, 1 under Ray)")
    g.add_argument("--cell-gpus", type=float, default=0.0,
                   help="GPUs each cell reserves under Ray (e.g. 0.5: two cells per GPU; default 0: CPU only)")
    g.add_argument("--finished-only", action="store_true",
                   help="run no cell: write the table of the cells already finished (a long grid's partial "
                        "table, also while other processes run its cells)")
    g.add_argument("--store", default=None, metavar="FILE",
                   help="results store every finished cell is appended to (default: the store's default "
                        "file; 'none': no store)")


def grid_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`run_grid` keywords from parsed :func:`add_grid_arguments` flags (checked)."""
    for name in ("workers", "cell_threads"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise ConfigError(f"option --{name.replace('_', '-')} must be >= 1; got {v}")
    if getattr(args, "address", None) is not None and getattr(args, "executor", "local") != "ray":
        raise ConfigError("option --address needs --executor ray")
    gpus = getattr(args, "cell_gpus", 0.0) or 0.0
    if gpus < 0 or (gpus and getattr(args, "executor", "local") != "ray"):
        raise ConfigError(f"option --cell-gpus must be >= 0 and needs --executor ray; got {gpus}")
    return {"executor": getattr(args, "executor", "local"), "address": getattr(args, "address", None),
            "workers": getattr(args, "workers", None), "threads": getattr(args, "cell_threads", None),
            "gpus": float(getattr(args, "cell_gpus", 0.0) or 0.0),
            "store": _store_option(getattr(args, "store", None)), "quiet": bool(getattr(args, "quiet", False)),
            "finished_only": bool(getattr(args, "finished_only", False))}


def _store_option(value: str | None) -> Path | None | Literal[False]:
    if value is None:
        return None
    return False if value.lower() == "none" else Path(value)

