"""The disk cache behind every generate and embed call.

One SQLite file (``$RECWISE_HOME/llm-cache.sqlite`` by default) holds one row per
generated text or embedded vector. The key is a SHA-256 of a canonical JSON document
naming the call kind, the backend, the model fingerprint, the prompt (text or chat
messages) and every parameter that changes the output, so a re-run with the same
inputs makes zero model calls.

Several processes may share the file: it runs in WAL mode with a busy timeout, each
write is one transaction (``INSERT OR IGNORE``), and a reader never sees a half-written
row. The first writer of a key wins; later writers of the same key are ignored, which
keeps a cached sample stable once stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recwise.errors import DataError

__all__ = ["CacheStats", "LLMCache", "cache_key", "default_cache_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key     TEXT PRIMARY KEY,
    kind    TEXT NOT NULL,
    backend TEXT NOT NULL,
    model   TEXT NOT NULL,
    value   BLOB NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """``$RECWISE_LLM_CACHE`` if set, else ``$RECWISE_HOME/llm-cache.sqlite``.

    ``RECWISE_HOME`` defaults to ``~/.cache/recwise`` (as for the prepared-data cache).
    """
    explicit = os.environ.get("RECWISE_LLM_CACHE")
    if explicit:
        return Path(explicit)
    root = Path(os.environ.get("RECWISE_HOME", Path.home() / ".cache" / "recwise"))
    return root / "llm-cache.sqlite"


def cache_key(document: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of ``document`` as canonical JSON (sorted keys, no spaces)."""
    blob = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    """What the cache file holds, and this object's hits and misses since it was opened.

    Parameters
    ----------
    path : Path
        The SQLite file.
    entries : int
        Rows in the file.
    size_bytes : int
        Size of the file (plus its WAL) on disk.
    by_kind : tuple of (kind, backend, model, count)
        Rows grouped by call kind (``generate`` or ``embed``), backend and model.
    hits, misses : int
        Lookups answered and not answered by this cache object.
    """

    path: Path
    entries: int
    size_bytes: int
    by_kind: tuple[tuple[str, str, str, int], ...]
    hits: int
    misses: int


class LLMCache:
    """A process- and thread-safe key/value store in one SQLite file.

    Parameters
    ----------
    path : str or Path, optional
        The SQLite file; default :func:`default_cache_path`. Its folder is created.
    busy_timeout_s : float, default 60.0
        How long a writer waits for another process's lock before failing.

    Examples
    --------
    >>> cache = LLMCache("/tmp/doc-cache.sqlite")
    >>> cache.put_many([("k1", "generate", "local", "m", b"hello")])
    >>> cache.get_many(["k1", "k2"])
    {'k1': b'hello'}
    """

    def __init__(self, path: str | Path | None = None, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self._busy_ms = int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            with conn:
                conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"LLM cache {self.path} cannot be opened ({exc}); delete it or pass another cache path"
            ) from None

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread (and per process: a forked child opens its own).
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        pid = getattr(self._local, "pid", None)
        if conn is None or pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            for _ in range(50):  # switching to WAL needs a moment without other writers
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError:
                    time.sleep(0.05)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return ``{key: value}`` for the keys present; count hits and misses."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in conn.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk):
                found[key] = bytes(value)
        with self._lock:
            self.hits += len(found)
            self.misses += len(keys) - len(found)
        return found

    def put_many(self, rows: Iterable[tuple[str, str, str, str, bytes]]) -> None:
        """Store ``(key, kind, backend, model, value)`` rows in one transaction; first writer wins."""
        records = [(k, kind, b, m, sqlite3.Binary(v), time.time()) for k, kind, b, m, v in rows]
        if not records:
            return
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?, ?)", records)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def stats(self) -> CacheStats:
        """Count the rows, grouped by kind, backend and model."""
        conn = self._conn()
        groups = tuple(
            (str(k), str(b), str(m), int(n))
            for k, b, m, n in conn.execute(
                "SELECT kind, backend, model, COUNT(*) FROM entries GROUP BY kind, backend, model ORDER BY 1, 2, 3"
            )
        )
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return CacheStats(self.path, sum(g[3] for g in groups), size, groups, self.hits, self.misses)

    def clear(self, *, kind: str | None = None, model: str | None = None) -> int:
        """Delete rows (all, or those of one kind and/or model); return how many were deleted."""
        where, args = [], []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        sql = "DELETE FROM entries" + (" WHERE " + " AND ".join(where) if where else "")
        conn = self._conn()
        with self._lock:
            cur = conn.execute(sql, args)
        deleted = cur.rowcount
        if not where:
            conn.execute("VACUUM")
        return int(deleted)

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
