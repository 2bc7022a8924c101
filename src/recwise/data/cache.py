"""Prepared-data cache: columnar ``.npy`` files + ``schema.json`` + ``split.npz`` per key.

A prepared dataset lives in ``<root>/prepared/<dataset>-<key>/`` where ``key`` hashes the raw
files (content, or size+mtime+head+tail for files over 256 MiB) and the preparation options.
It is written into a temporary folder and renamed into place, so a crash or a bad raw file
never leaves a half-written entry; ``meta.json`` is written last and marks it complete.
Columns are memory-mapped on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recwise.data.schema import Schema
from recwise.data.table import Table
from recwise.errors import DataError
from recwise.results import usual_modes

__all__ = ["Prepared", "cache_key", "default_root", "load_prepared", "save_prepared"]

FORMAT_VERSION = 1
_BIG = 256 * 2**20


def default_root() -> Path:
    """``$RECWISE_HOME`` or ``~/.cache/recwise``: holds ``raw/<dataset>`` and ``prepared/``."""
    return Path(os.environ.get("RECWISE_HOME", Path.home() / ".cache" / "recwise"))


@dataclass
class Prepared:
    """A prepared dataset: the full Table and its fixed split (row indices per split name)."""

    table: Table
    splits: dict[str, np.ndarray]
    meta: dict[str, Any]

    def part(self, split: str) -> Table:
        return self.table.take(self.splits[split])


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    st = path.stat()
    h.update(f"{path.name}:{st.st_size}".encode())
    with open(path, "rb") as fh:
        if st.st_size <= _BIG:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(str(st.st_mtime_ns).encode())
            h.update(fh.read(1 << 20))
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return h.hexdigest()


def cache_key(raw_files: list[Path], options: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_VERSION, **options}, sort_keys=True, default=str).encode())
    for p in sorted(raw_files):
        h.update(_file_digest(p).encode())
    return h.hexdigest()[:16]


def save_prepared(folder: Path, prepared: Prepared) -> Path:
    """Write ``prepared`` to ``folder`` atomically (temp folder, then rename)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for name, col in prepared.table.columns.items():
            np.save(tmp / f"{_safe(name)}.npy", np.ascontiguousarray(col), allow_pickle=False)
        np.savez(tmp / "split.npz", **prepared.splits)  # type: ignore[arg-type]  # numpy: a key could be allow_pickle
        (tmp / "schema.json").write_text(prepared.table.schema.to_json(), encoding="utf-8")
        meta = {**prepared.meta, "format": FORMAT_VERSION, "columns": list(prepared.table.columns)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
        usual_modes(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if (folder / "meta.json").exists():  # another process finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else f"%{ord(c):02x}" for c in name)


def load_prepared(folder: Path, *, mmap: bool = True) -> Prepared:
    """Load a prepared dataset; a missing or corrupt entry is a DataError naming the file."""
    hint = f"delete {folder} and run again to rebuild it"
    current = folder / "meta.json"
    try:
        meta = json.loads(current.read_text(encoding="utf-8"))
        current = folder / "schema.json"
        schema = Schema.from_json(current.read_text(encoding="utf-8"))
        columns = {}
        for name in meta["columns"]:
            current = folder / f"{_safe(name)}.npy"
            columns[name] = np.load(current, mmap_mode="r" if mmap else None, allow_pickle=False)
        current = folder / "split.npz"
        with np.load(current, allow_pickle=False) as z:
            splits = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"prepared data incomplete: {current} is missing; {hint}") from None
    except (ValueError, KeyError, OSError, EOFError, json.JSONDecodeError) as exc:
        raise DataError(f"prepared data file {current} is corrupt ({str(exc).splitlines()[0][:120]}); {hint}") from None
    return Prepared(Table(schema, columns), splits, meta)
