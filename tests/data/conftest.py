"""Shared fixtures for the data tests: the real sample files of ../shared/data, copied per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("RECWISE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


@pytest.fixture
def msr_sample(tmp_path: Path) -> Callable[[str], Path]:
    """Copy one msr-samples/<name> folder into tmp_path (never into the repo) and return the copy."""

    def copy(name: str) -> Path:
        src = SHARED_DATA / "msr-samples" / name
        if not src.is_dir():
            pytest.skip(f"sample folder {src} not available")
        dst = tmp_path / "raw" / name
        shutil.copytree(src, dst)
        for p in dst.iterdir():
            p.chmod(0o644)
        return dst

    return copy


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("RECWISE_HOME", str(root))
    return root
