"""Where a result came from: source commit, package versions, machine, threads, executor, mode.

:func:`provenance` returns one JSON-ready dict that a run writes into ``run.json`` and the results
store keeps with every row (:func:`recwise.store.provenance_meta`), so two tables of numbers can
be told apart: another commit, other library versions, another thread count, another executor,
or the deterministic mode on or off (:func:`recwise.train.deterministic`).

Standard library and ``importlib.metadata`` only; the git lookups run once per process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from recwise import __version__

__all__ = ["PACKAGES", "cpu_model", "git_commit", "git_dirty", "package_versions", "provenance"]

# the distributions whose versions change numbers (import name differs for scikit-learn)
PACKAGES = ("torch", "numpy", "scikit-learn", "numba")

_SOURCE = Path(__file__).resolve().parent  # the recwise package folder this process imported


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=_SOURCE, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


@functools.cache
def git_commit() -> str | None:
    """The commit of the git checkout holding the imported recwise sources; None outside one.

    None also when the package folder sits inside some other repository without being tracked
    there (an install into a virtual environment inside a clone), since that commit says nothing
    about the code that ran.
    """
    if _git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    sha = (_git("rev-parse", "HEAD") or "").strip()
    return sha if len(sha) == 40 else None


@functools.cache
def git_dirty() -> bool | None:
    """Whether tracked files of the recwise package differ from :func:`git_commit` (None outside git)."""
    if git_commit() is None:
        return None
    out = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return None if out is None else bool(out.strip())


@functools.cache
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    """``{"python": "3.11.9", "torch": "2.13.0+cpu", ...}`` for :data:`PACKAGES`; None when not installed."""
    return {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES}}


@functools.cache
def cpu_model() -> str | None:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`); None if unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def provenance(*, executor: str | None = None, deterministic: bool | None = None,
               threads: int | None = None) -> dict[str, Any]:
    """This process's provenance as a JSON-ready dict.

    Parameters
    ----------
    executor : how the run was executed ("local", "ray", "torchrun", ...); None when not stated.
    deterministic : whether it ran inside :func:`recwise.train.deterministic`; None when not stated.
    threads : torch intra-op threads of the computation; default ``torch.get_num_threads()`` when
        torch is already imported (this module never imports it), else None.

    Returns
    -------
    dict with ``git_commit`` (str or None), ``git_dirty`` (bool or None), ``version`` (recwise),
    ``python``, ``packages`` (``{"torch", "numpy", "scikit-learn", "numba"}`` -> version or None),
    ``platform``, ``cpu`` (model name), ``cpu_capability`` (the vector instruction set torch's CPU
    kernels dispatch to, e.g. ``"AVX512"``; None when torch is not imported), ``cpu_count``, ``threads``,
    ``executor`` and ``deterministic``. Two machines with other vector units can give other last bits
    in the same deterministic run (other kernels inside torch and numba): ``cpu`` and
    ``cpu_capability`` say when that may be why two tables differ.
    """
    torch = sys.modules.get("torch")
    capability = None
    if torch is not None:
        if threads is None:
            threads = int(torch.get_num_threads())
        with contextlib.suppress(AttributeError, RuntimeError):
            capability = str(torch.backends.cpu.get_cpu_capability())
    versions = package_versions()
    return {
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "version": __version__,
        "python": versions.pop("python"),
        "packages": versions,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_capability": capability,
        "cpu_count": os.cpu_count(),
        "threads": None if threads is None else int(threads),
        "executor": executor,
        "deterministic": None if deterministic is None else bool(deterministic),
    }
