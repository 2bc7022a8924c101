"""The results store: every run's result rows in one DuckDB file, with where they came from.

``ResultStore(path)`` appends :class:`~recwise.results.ResultRow` s together with the run's metadata
(config hash, package version, git commit, wall time, peak memory) and its provenance (torch
threads, executor, deterministic mode, library versions; see :mod:`recwise.provenance`) and answers
queries: the rows, mean / std / count per group, the provenance behind them, and the cells that
failed. The default file is
``$RECWISE_STORE`` if set, else ``$RECWISE_HOME/results.duckdb`` (``RECWISE_HOME`` defaults to
``~/.cache/recwise``).

Several processes may append at once (Ray workers of one grid). DuckDB lets one process at a time
open a file for writing, so every access takes an exclusive lock on a sidecar file
(``<store>.lock``, the ``filelock`` package), opens the database, runs one short transaction and
closes it; a writer waits for the lock (polling, up to ``lock_timeout`` seconds) instead of failing,
and no row is lost. If a process outside recwise holds DuckDB's own lock (a DuckDB shell left open),
the open is retried with exponential backoff until the same timeout, then a :class:`StoreError`
says who holds it. See ``docs/report.md`` for why this design over per-writer shards.

A store written before the provenance columns existed still opens: reading treats the missing
columns as NULL, and the first append adds them (``ALTER TABLE ... ADD COLUMN``).

A store file that DuckDB cannot read (truncated, overwritten, not a DuckDB file, not a recwise store)
raises :class:`StoreError` naming the file and how to rebuild it; the store never answers from a
damaged file.
"""

from __future__ import annotations

import difflib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recwise.errors import ConfigError, DataError, DependencyError
from recwise.provenance import git_commit, git_dirty, package_versions
from recwise.results import COLUMNS, ResultRow

__all__ = [
    "GROUP_COLUMNS",
    "META_COLUMNS",
    "PROVENANCE_COLUMNS",
    "ResultStore",
    "StoreError",
    "default_store_path",
    "git_commit",
    "peak_rss_mb",
    "provenance_meta",
]

SCHEMA_VERSION = 2  # 2: provenance columns git_dirty, threads, executor, deterministic, packages
# columns added after version 1, with their SQL types: an older file gets them on its next append
# and reads them as NULL until then
_ADDED_COLUMNS = {"git_dirty": "BOOLEAN", "threads": "INTEGER", "executor": "VARCHAR", "deterministic": "BOOLEAN",
                  "packages": "VARCHAR"}
# metadata an append may give; every one becomes a column of each row it appends
META_COLUMNS = ("config_hash", "version", "git_commit", "wall_seconds", "peak_rss_mb", "host", "source",
                *_ADDED_COLUMNS)
# what tells two tables of numbers apart: summary() may group by these, `recwise results` lists them
PROVENANCE_COLUMNS = ("git_commit", "git_dirty", "version", "threads", "executor", "deterministic")
# the default grouping of summary(): one group per model and measured quantity, over seeds
GROUP_COLUMNS = ("task", "dataset", "model", "split", "segment", "metric")
FILTER_COLUMNS = ("task", "dataset", "model", "seed", "split", "segment", "metric", "config_hash", "run_id",
                  *PROVENANCE_COLUMNS)

_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS results (
    task         VARCHAR NOT NULL,
    dataset      VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    seed         INTEGER NOT NULL,
    split        VARCHAR,              -- NULL on a failed cell's row
    segment      VARCHAR,
    metric       VARCHAR,
    value        DOUBLE,
    status       VARCHAR NOT NULL,     -- 'ok' or 'failed'
    error        VARCHAR,              -- a failed cell's reason (one line)
    run_id       VARCHAR NOT NULL,     -- one id per append call
    append_no    BIGINT NOT NULL,      -- 1, 2, 3 ... in the order the appends committed
    created_at   TIMESTAMP NOT NULL,   -- UTC
    config_hash  VARCHAR,
    version      VARCHAR,
    git_commit   VARCHAR,
    wall_seconds DOUBLE,
    peak_rss_mb  DOUBLE,
    host         VARCHAR,
    source       VARCHAR,              -- e.g. 'import:<path>#<sha256>' for rows read from a results.csv
    git_dirty    BOOLEAN,              -- tracked package files differed from git_commit
    threads      INTEGER,              -- torch intra-op threads of the computation
    executor     VARCHAR,              -- 'local', 'ray', 'torchrun', ...
    deterministic BOOLEAN,             -- computed inside recwise.train.deterministic()
    packages     VARCHAR               -- JSON: {"python": ..., "torch": ..., "numpy": ..., ...}
);
CREATE TABLE IF NOT EXISTS store_info (key VARCHAR PRIMARY KEY, value VARCHAR);
"""
_ALL_COLUMNS = (*COLUMNS, "status", "error", "run_id", "append_no", "created_at", *META_COLUMNS)
_REQUIRED_COLUMNS = tuple(c for c in _ALL_COLUMNS if c not in _ADDED_COLUMNS)  # a version-1 store has these
_RESULTS = "__results__"  # placeholder in read queries: the table, or a view of an old one with NULL columns


class StoreError(DataError):
    """The results store cannot be read or written: corrupt, truncated, locked or not a store."""


def default_store_path() -> Path:
    """``$RECWISE_STORE`` if set, else ``$RECWISE_HOME/results.duckdb`` (home default ``~/.cache/recwise``)."""
    explicit = os.environ.get("RECWISE_STORE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("RECWISE_HOME", Path.home() / ".cache" / "recwise")) / "results.duckdb"


def provenance_meta(prov: Mapping[str, Any]) -> dict[str, Any]:
    """The store's metadata keys from a :func:`recwise.provenance.provenance` dict (or a run.json's copy).

    Gives ``version``, ``git_commit``, ``git_dirty``, ``threads``, ``executor``, ``deterministic``
    and ``packages`` (python and library versions, stored as JSON); a key the dict lacks is None.
    """
    packages = prov.get("packages")
    if isinstance(packages, Mapping):
        packages = {"python": prov.get("python"), **packages} if prov.get("python") else dict(packages)
    return {"version": prov.get("version"), "git_commit": prov.get("git_commit"), "git_dirty": prov.get("git_dirty"),
            "threads": prov.get("threads"), "executor": prov.get("executor"),
            "deterministic": prov.get("deterministic"), "packages": packages}


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far, in MiB (None where ``resource`` is missing)."""
    try:
        import resource
        import sys
    except ImportError:  # Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024  # macOS reports bytes


def _duckdb():  # noqa: ANN202
    try:
        import duckdb
    except ImportError:
        raise DependencyError("the results store needs duckdb: pip install 'recwise[grid]'") from None
    return duckdb


def _STORAGE_ERRORS() -> tuple[type[BaseException], ...]:  # noqa: N802
    """DuckDB errors that mean the file is damaged (a programming error stays a plain exception)."""
    duckdb = _duckdb()
    return duckdb.IOException, duckdb.SerializationException, duckdb.InternalException


def _rebuild_hint(path: Path) -> str:
    return (f"move it aside and rebuild it from the runs' files: "
            f"`recwise results import --store {path} results/*/results.csv`")


def _check_meta(meta: Mapping[str, Any]) -> None:
    for key in meta:
        if key not in META_COLUMNS:
            close = difflib.get_close_matches(key, META_COLUMNS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(META_COLUMNS)}"
            raise ConfigError(f"unknown result metadata key {key!r}{hint}")


def _filled_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Given keys as they are (None included); absent ones get this process's version, commit, dirty
    flag, package versions, peak RSS and host. ``threads``, ``executor`` and ``deterministic`` say
    how the rows were computed, which only the caller knows: left out, they are NULL."""
    _check_meta(meta)
    from recwise import __version__

    out: dict[str, Any] = dict.fromkeys(META_COLUMNS)
    out.update(version=__version__, git_commit=git_commit(), git_dirty=git_dirty(), packages=package_versions(),
               peak_rss_mb=peak_rss_mb(), host=socket.gethostname())
    out.update(meta)
    for key in ("wall_seconds", "peak_rss_mb"):
        if out[key] is not None:
            out[key] = float(out[key])
    if out["threads"] is not None:
        out["threads"] = int(out["threads"])
    for key in ("git_dirty", "deterministic"):
        if out[key] is not None:
            out[key] = bool(out[key])
    if out["packages"] is not None and not isinstance(out["packages"], str):
        out["packages"] = json.dumps(dict(out["packages"]), sort_keys=True)
    return out


class ResultStore:
    """Result rows of many runs in one DuckDB file, safe to append to from several processes.

    Parameters
    ----------
    path : str or Path, optional
        The store file; default :func:`default_store_path`. Created on the first append.
    lock_timeout : float
        Seconds a writer or reader waits for the store (its lock file, then DuckDB's own lock)
        before raising :class:`StoreError`.

    Examples
    --------
    >>> store = ResultStore(tmp / "results.duckdb")                                    # doctest: +SKIP
    >>> store.append(rows, {"config_hash": "a9d9dcba7cd5", "wall_seconds": 6.6})       # doctest: +SKIP
    >>> store.summary(task="msr", metric="auc", split="test", segment="all")          # doctest: +SKIP
    """

    def __init__(self, path: str | Path | None = None, *, lock_timeout: float = 120.0) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.lock_timeout = float(lock_timeout)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    @property
    def exists(self) -> bool:
        return self.path.exists()

    # ---- writing ------------------------------------------------------------------------------------

    def append(self, rows: Sequence[ResultRow], meta: Mapping[str, Any] | None = None) -> int:
        """Append one run's rows in one transaction; returns the number of rows added.

        ``meta`` keys are :data:`META_COLUMNS`; a key left out gets this process's value where one
        exists (``version``, ``git_commit``, ``peak_rss_mb``, ``host``), else NULL. Give a key as None
        to store NULL (an import does this for ``peak_rss_mb``, which it cannot know).
        """
        return self.append_many([(rows, meta or {})])

    def append_failure(self, task: str, dataset: str, model: str, seed: int, reason: str,
                       meta: Mapping[str, Any] | None = None) -> None:
        """Record that a cell failed (one row, status 'failed', with its one-line reason)."""
        self._write([_failure_row(task, dataset, model, seed, reason, _filled_meta(meta or {}))])

    def append_many(self, batches: Iterable[tuple[Sequence[ResultRow], Mapping[str, Any]]]) -> int:
        """Append several runs (each rows + meta, each its own run_id) in one transaction."""
        records: list[dict[str, Any]] = []
        for rows, meta in batches:
            filled = _filled_meta(meta)
            run_id = uuid.uuid4().hex
            for r in rows:
                if not isinstance(r, ResultRow):
                    raise ConfigError(f"ResultStore.append takes ResultRow objects; got {type(r).__name__}")
                records.append({**r.__dict__, "value": float(r.value), "status": "ok", "error": None,
                                "run_id": run_id, **filled})
        if records:
            self._write(records)
        return len(records)

    def _write(self, records: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        now = datetime.now(UTC).replace(tzinfo=None)
        cols = {c: [rec.get(c) for rec in records] for c in _ALL_COLUMNS if c not in ("append_no", "created_at")}
        batch = pa.table(cols)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect(read_only=False) as con:
            try:
                con.begin()
                con.execute(_TABLE_SQL).fetchall()
                for name, sql_type in _ADDED_COLUMNS.items():  # a store from before a column existed gets it
                    con.execute(f"ALTER TABLE results ADD COLUMN IF NOT EXISTS {name} {sql_type}").fetchall()
                con.execute("INSERT OR REPLACE INTO store_info VALUES ('schema_version', ?)",
                            [str(SCHEMA_VERSION)]).fetchall()
                ((append_no,),) = con.execute("SELECT coalesce(max(append_no), 0) + 1 FROM results").fetchall()
                con.register("incoming", batch)
                names = ", ".join(cols)
                con.execute(f"INSERT INTO results ({names}, append_no, created_at) "
                            f"SELECT {names}, ?, ? FROM incoming", [append_no, now]).fetchall()
                con.unregister("incoming")
                con.commit()
            except _STORAGE_ERRORS() as exc:
                raise self._damaged(exc) from None

    # ---- reading ------------------------------------------------------------------------------------

    def query(self, *, status: str = "ok", latest: bool = True, **filters: Any):  # noqa: ANN201
        """The stored rows as a polars DataFrame (all columns), filtered.

        Filters are column names (:data:`FILTER_COLUMNS`) given a value or a list of values.
        ``latest=True`` keeps, for each (task, dataset, model, seed, split, segment, metric), only the
        row of the most recent append, so a re-run cell or a re-imported file is counted once;
        ``latest=False`` returns every row ever appended. ``status`` is 'ok', 'failed' or 'any'.
        """
        where, params = self._where(filters, status)
        sql = f"SELECT * FROM {_RESULTS} WHERE {where}"
        if latest:
            sql += (" QUALIFY row_number() OVER (PARTITION BY task, dataset, model, seed, split, segment, metric "
                    "ORDER BY append_no DESC) = 1")
        return self._frame(sql + " ORDER BY task, dataset, model, seed, split, segment, metric", params)

    def rows(self, **filters: Any) -> list[ResultRow]:
        """The latest ok rows as ResultRow objects (the same filters as :meth:`query`)."""
        df = self.query(**filters)
        return [ResultRow(*rec) for rec in df.select(COLUMNS).iter_rows()]

    def summary(self, *, by: Sequence[str] = GROUP_COLUMNS, latest: bool = True, **filters: Any):  # noqa: ANN201
        """Mean, sample std (0 for one value) and count of ``value`` per group, NaN values left out.

        ``by`` may also name provenance columns (:data:`PROVENANCE_COLUMNS`), e.g. ``threads``.
        Returns a polars DataFrame with the ``by`` columns, ``mean``, ``std`` and ``count``.
        """
        for col in by:
            if col not in FILTER_COLUMNS:
                raise ConfigError(f"cannot group results by {col!r}; choose from {', '.join(FILTER_COLUMNS)}")
        inner, params = self._summarised(filters, latest)
        keys = ", ".join(by)
        sql = (f"SELECT {keys}, avg(value) AS mean, coalesce(stddev_samp(value), 0.0) AS std, count(*) AS count "
               f"FROM ({inner}) GROUP BY {keys} ORDER BY {keys}")
        return self._frame(sql, params)

    def provenance(self, *, latest: bool = True, **filters: Any):  # noqa: ANN201
        """The distinct provenances behind the rows :meth:`summary` would use, with their row counts.

        One row per (git_commit, git_dirty, version, threads, executor, deterministic, packages) with
        ``rows`` (result rows) and ``runs`` (appends), most rows first; NULL where a row's provenance
        is unknown (imported from an old folder, or stored before these columns existed).
        """
        inner, params = self._summarised(filters, latest)
        keys = ", ".join((*PROVENANCE_COLUMNS, "packages"))
        sql = (f"SELECT {keys}, count(*) AS rows, count(DISTINCT run_id) AS runs FROM ({inner}) "
               f"GROUP BY {keys} ORDER BY rows DESC, {keys}")
        return self._frame(sql, params)

    def _summarised(self, filters: Mapping[str, Any], latest: bool) -> tuple[str, list[Any]]:
        """The query of the ok, non-NaN rows (each cell's latest unless ``latest`` is False) that summaries read."""
        where, params = self._where(filters, "ok")
        inner = f"SELECT * FROM {_RESULTS} WHERE {where} AND NOT isnan(value)"
        if latest:
            inner += (" QUALIFY row_number() OVER (PARTITION BY task, dataset, model, seed, split, segment, metric "
                      "ORDER BY append_no DESC) = 1")
        return inner, params

    def failures(self, **filters: Any):  # noqa: ANN201
        """Cells whose most recent event is a failure (a later successful run clears it), as a DataFrame."""
        where, params = self._where(filters, "any")
        sql = (f"SELECT task, dataset, model, seed, error, created_at, run_id FROM {_RESULTS} WHERE {where} "
               "QUALIFY row_number() OVER (PARTITION BY task, dataset, model, seed ORDER BY append_no DESC) = 1 "
               "AND status = 'failed' ORDER BY task, dataset, model, seed")
        return self._frame(sql, params)

    def count(self) -> int:
        """Rows in the store, every append and status included (0 when the file does not exist yet)."""
        if not self.exists:
            return 0
        return int(self._frame(f"SELECT count(*) AS n FROM {_RESULTS}", [])["n"][0])

    def has_source(self, source: str) -> bool:
        """Whether rows with this ``source`` were appended before (imports use it to skip a file seen already)."""
        if not self.exists:
            return False
        return bool(self._frame(f"SELECT count(*) AS n FROM {_RESULTS} WHERE source = ?", [source])["n"][0])

    # ---- plumbing -----------------------------------------------------------------------------------

    @staticmethod
    def _where(filters: Mapping[str, Any], status: str) -> tuple[str, list[Any]]:
        clauses: list[str] = ["TRUE"]
        params: list[Any] = []
        if status not in ("ok", "failed", "any"):
            raise ConfigError(f"status must be 'ok', 'failed' or 'any'; got {status!r}")
        if status != "any":
            clauses.append("status = ?")
            params.append(status)
        for key, value in filters.items():
            if key not in FILTER_COLUMNS:
                close = difflib.get_close_matches(key, FILTER_COLUMNS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(FILTER_COLUMNS)}"
                raise ConfigError(f"unknown results filter {key!r}{hint}")
            if value is None:
                continue
            values = [value] if isinstance(value, (str, int)) else list(value)
            clauses.append(f"{key} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        return " AND ".join(clauses), params

    def _frame(self, sql: str, params: list[Any]):  # noqa: ANN202
        import polars as pl

        if not self.exists:
            raise StoreError(f"no results store at {self.path}: run a grid (`recwise bench ...`) or import "
                             f"results: `recwise results import --store {self.path} results/*/results.csv`")
        with self._connect(read_only=True) as con:
            try:
                missing = self._check_schema(con)
                if missing:  # an older store, read as it is (no write lock to migrate it): the columns are NULL
                    nulls = ", ".join(f"CAST(NULL AS {_ADDED_COLUMNS[c]}) AS {c}" for c in missing)
                    sql = sql.replace(_RESULTS, f"(SELECT *, {nulls} FROM results)")
                sql = sql.replace(_RESULTS, "results")
                table = con.sql(sql, params=params).to_arrow_table()
            except _STORAGE_ERRORS() as exc:
                raise self._damaged(exc) from None
        return pl.from_arrow(table)

    def _check_schema(self, con) -> list[str]:  # noqa: ANN001
        """Raise unless ``results`` has the version-1 columns; return the later columns it lacks."""
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'results'").fetchall()}
        missing = [c for c in _REQUIRED_COLUMNS if c not in have]
        if missing:
            lacks = ", ".join(missing[:4]) + ("..." if len(missing) > 4 else "")
            raise StoreError(f"{self.path} is not a recwise results store (table 'results' lacks {lacks}); "
                             f"{_rebuild_hint(self.path)}")
        return [c for c in _ADDED_COLUMNS if c not in have]

    def _damaged(self, exc: BaseException) -> StoreError:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StoreError(f"results store {self.path} is corrupt or truncated ({first}); {_rebuild_hint(self.path)}")

    def _check_size(self, con) -> None:  # noqa: ANN001
        """A DuckDB file is 3 header pages plus whole blocks: any other length means it was cut short.

        DuckDB reads blocks lazily, so without this a truncated file could still take appends and
        answer queries that do not touch the lost blocks.
        """
        try:
            ((block_size, used),) = con.sql("SELECT block_size, used_blocks FROM pragma_database_size()").fetchall()
        except _STORAGE_ERRORS() as exc:
            raise self._damaged(exc) from None
        size = self.path.stat().st_size
        body = size - _HEADER_BYTES
        if body < 0 or body % block_size or body // block_size < used:
            raise StoreError(f"results store {self.path} is truncated ({size} bytes; {used} blocks of "
                             f"{block_size} bytes in use); {_rebuild_hint(self.path)}")

    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[Any]:
        """Hold the sidecar lock and one DuckDB connection for the duration of the block."""
        from filelock import FileLock, Timeout

        duckdb = _duckdb()
        lock = FileLock(str(self.path) + ".lock")
        deadline = time.monotonic() + self.lock_timeout
        try:
            lock.acquire(timeout=self.lock_timeout, poll_interval=0.02)
        except Timeout:
            raise StoreError(f"results store {self.path}: waited {self.lock_timeout:.0f} s for its lock file "
                             f"{self.path}.lock; another recwise process is writing (delete the lock file only "
                             "if no recwise process is running)") from None
        try:
            existed = self.path.exists()
            if existed:
                _check_header(self.path)
            delay = 0.02
            while True:
                try:
                    con = duckdb.connect(str(self.path), read_only=read_only, config={"threads": 1})
                    break
                except duckdb.Error as exc:
                    message = str(exc)
                    if "could not set lock" not in message.lower() and "conflicting lock" not in message.lower():
                        raise self._damaged(exc) from None
                    if time.monotonic() + delay > deadline:  # a process outside recwise holds DuckDB's lock
                        raise StoreError(f"results store {self.path} is locked by another program "
                                         f"({message.splitlines()[0]}); close it and retry") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
            try:
                if existed:
                    self._check_size(con)
                yield con
            finally:
                con.close()
        finally:
            lock.release()


_DUCKDB_MAGIC = b"DUCK"
_HEADER_BYTES = 3 * 4096  # DuckDB's main header and its two database headers


def _check_header(path: Path) -> None:
    """Refuse a file that cannot be a DuckDB database before DuckDB opens (or recreates) it."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if len(head) < 12 or head[8:12] != _DUCKDB_MAGIC:
        what = "is empty" if not head else "is not a DuckDB database (bad header)"
        raise StoreError(f"results store {path} {what}; {_rebuild_hint(path)}")


def _failure_row(task: str, dataset: str, model: str, seed: int, reason: str, meta: dict[str, Any]) -> dict[str, Any]:
    line = (str(reason).strip().splitlines() or ["failed"])[0]
    return {"task": task, "dataset": dataset, "model": model, "seed": int(seed), "split": None, "segment": None,
            "metric": None, "value": None, "status": "failed", "error": line, "run_id": uuid.uuid4().hex, **meta}
