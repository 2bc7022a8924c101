"""The disk cache: keys, zero model calls on re-runs, several processes writing at once."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from recwise.llm import GenerationParams, Generator, LLMCache, default_cache_path

from .conftest import FakeBackend


def _writer(path: str, worker: int, n: int) -> None:
    cache = LLMCache(path)
    for i in range(n):  # one transaction per row: maximal contention
        cache.put_many([(f"w{worker}-{i}", "generate", "fake", "m", f"{worker}:{i}".encode())])
        cache.put_many([(f"shared-{i}", "generate", "fake", "m", f"{worker}".encode())])


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    LLMCache(path)  # create the file first, as a real run would
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    cache = LLMCache(path)
    assert cache.stats().entries == 4 * 150 + 150
    got = cache.get_many([f"w{w}-{i}" for w in range(4) for i in range(150)])
    assert all(got[f"w{w}-{i}"] == f"{w}:{i}".encode() for w in range(4) for i in range(150))
    shared = cache.get_many([f"shared-{i}" for i in range(150)])
    assert len(shared) == 150 and all(v in {b"0", b"1", b"2", b"3"} for v in shared.values())


def test_first_writer_wins_and_clear(tmp_path: Path) -> None:
    cache = LLMCache(tmp_path / "c.sqlite")
    cache.put_many([("k", "generate", "b", "m1", b"first")])
    cache.put_many([("k", "generate", "b", "m1", b"second"), ("e", "embed", "b", "m2", b"\x00")])
    assert cache.get_many(["k", "missing"]) == {"k": b"first"}
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.stats().by_kind == (("embed", "b", "m2", 1), ("generate", "b", "m1", 1))
    assert cache.clear(kind="embed") == 1
    assert cache.stats().entries == 1
    assert cache.clear() == 1 and cache.stats().entries == 0


def test_default_path_follows_recwise_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECWISE_LLM_CACHE", raising=False)
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / "llm-cache.sqlite"
    monkeypatch.setenv("RECWISE_LLM_CACHE", str(tmp_path / "x.sqlite"))
    assert default_cache_path() == tmp_path / "x.sqlite"


def test_rerun_makes_zero_backend_calls(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    backend = FakeBackend()
    prompts = ["a", [{"role": "user", "content": "b"}], "a"]
    first = Generator(backend, LLMCache(path)).generate(prompts, GenerationParams(max_tokens=5))
    assert len(backend.rows) == 2  # the duplicate prompt is generated once
    again = Generator(backend, LLMCache(path))  # a new process would open the file afresh
    assert again.generate(prompts, GenerationParams(max_tokens=5)) == first
    assert again.backend_calls == 0 and len(backend.rows) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"max_tokens": 6},
        {"stop": ("\n",)},
        {"temperature": 0.5},
        {"top_p": 0.9, "temperature": 0.5},
    ],
)
def test_every_output_parameter_is_in_the_key(tmp_path: Path, change: dict) -> None:
    backend = FakeBackend()
    gen = Generator(backend, LLMCache(tmp_path / "c.sqlite"))
    gen.generate(["p"], GenerationParams(max_tokens=5))
    gen.generate(["p"], GenerationParams(**{"max_tokens": 5, **change}))
    assert gen.backend_calls == 2


def test_model_fingerprint_and_backend_are_in_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    Generator(FakeBackend("v1"), LLMCache(path)).generate(["p"])
    other = Generator(FakeBackend("v2"), LLMCache(path))
    other.generate(["p"])
    assert other.backend_calls == 1


def test_seed_matters_only_when_sampling(tmp_path: Path) -> None:
    gen = Generator(FakeBackend(), LLMCache(tmp_path / "c.sqlite"))
    gen.generate(["p"], GenerationParams(seed=1))
    gen.generate(["p"], GenerationParams(seed=2))
    assert gen.backend_calls == 1  # greedy: the seed changes nothing
    gen.generate(["p"], GenerationParams(temperature=0.7, seed=1))
    gen.generate(["p"], GenerationParams(temperature=0.7, seed=2))
    assert gen.backend_calls == 3


def test_each_sample_is_cached_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    backend = FakeBackend()
    gen = Generator(backend, LLMCache(path))
    two = gen.sample(["p"], GenerationParams(temperature=0.8, n=2, seed=3))[0]
    four = gen.sample(["p"], GenerationParams(temperature=0.8, n=4, seed=3))[0]
    assert four[:2] == two and len(set(four)) == 4
    assert gen.backend_calls == 4  # samples 0 and 1 came from the cache
    greedy = Generator(backend, None).sample(["q"], GenerationParams(n=3))[0]
    assert len(set(greedy)) == 1 and backend.rows[-1].prompt == "q" and len(backend.rows) == 5


def test_cache_disabled_calls_every_time() -> None:
    gen = Generator(FakeBackend(), None)
    gen.generate(["p"])
    gen.generate(["p"])
    assert gen.backend_calls == 2
