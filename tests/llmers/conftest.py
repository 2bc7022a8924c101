"""Fixtures for the LLMERS tests: scripted LLM backends, a hashing text encoder, MovieLens-100K."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from recwise.data.sequence import Sequences
from recwise.llm import Completion, Generator, LLMCache, Row


class ScriptedBackend:
    """A generation backend whose answer is ``answer(prompt_text)``; counts the rows it is sent."""

    name = "scripted"

    def __init__(self, answer: Callable[[str], str], fingerprint: str = "scripted-v1") -> None:
        self.answer = answer
        self.fingerprint = fingerprint
        self.rows = 0

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        self.rows += len(rows)
        out = []
        for r in rows:
            text = r.prompt if isinstance(r.prompt, str) else r.prompt[-1]["content"]
            out.append(Completion(self.answer(text)))
        return out


def scripted_generator(answer: Callable[[str], str], cache_path: Path) -> Generator:
    return Generator(ScriptedBackend(answer), LLMCache(cache_path))


class HashingEncoder:
    """Texts -> unit vectors by hashing their words into ``dim`` buckets (a real, if simple, text
    encoder: texts sharing words get similar vectors). Same interface as :class:`recwise.llm.Encoder`."""

    def __init__(self, dim: int = 96) -> None:
        self.dim = dim
        self.backend_calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.backend_calls += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest()[:8], 16) % self.dim] += 1.0
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(n, 1e-12)


@pytest.fixture()
def encoder() -> HashingEncoder:
    return HashingEncoder()


def _ml100k_dir() -> Path | None:
    from recwise.data.seq_datasets import default_raw_dir

    raw = Path(os.environ.get("RECWISE_ML100K", default_raw_dir("ml-100k")))
    has_items = (raw / "u.item").exists() or (raw / "ml-100k.item").exists()
    return raw if raw.exists() and has_items else None


@pytest.fixture(scope="session")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sequences, Path]:
    from recwise.data.seq_datasets import load_sequences

    raw = _ml100k_dir()
    if raw is None:
        pytest.skip("MovieLens-100K raw files (with the item file) not found; set RECWISE_ML100K")
    seqs, _ = load_sequences("ml-100k", raw, root=tmp_path_factory.mktemp("rwhome"))
    return seqs, raw
