"""The llama.cpp backend on the real SmolLM2 GGUF file, the backend choice, and lazy loading."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recwise.errors import ConfigError
from recwise.llm import (
    GenerationParams,
    Generator,
    HttpBackend,
    LlamaCppBackend,
    LLMCache,
    LocalBackend,
    choose_local_backend,
    load_generator,
)

from .conftest import HAS_SMOLLM, free_port, needs_smollm

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
needs_llama = pytest.mark.skipif(
    not (HAS_LLAMA and HAS_SMOLLM),
    reason="optional: llama-cpp-python (it builds from source in scripts/setup.sh) or the SmolLM2 wheel is absent")

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def llama() -> LlamaCppBackend:
    if not (HAS_LLAMA and HAS_SMOLLM):
        pytest.skip("optional: llama-cpp-python or the SmolLM2 wheel is absent")
    return LlamaCppBackend("smollm2", threads=2, parallel=2)


@needs_llama
def test_greedy_chat_answers_and_a_pool_equals_one_context(llama: LlamaCppBackend) -> None:
    pool = Generator(llama, None)
    assert "5" in pool.complete([{"role": "user", "content": "What is 2+3?"}], GenerationParams(max_tokens=12))
    prompts: list[Any] = [FRANCE, "The opposite of hot is", [{"role": "user", "content": "Name a fruit."}],
                          [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Sky?"}]]
    params = GenerationParams(max_tokens=10)
    one = Generator(LlamaCppBackend("smollm2", threads=1, parallel=1), None)
    assert pool.generate(prompts, params) == [one.complete(p, params) for p in prompts]


@needs_llama
def test_stop_strings_cut_the_text(llama: LlamaCppBackend) -> None:
    gen = Generator(llama, None)
    free = gen.complete("Count: one, two, three,", GenerationParams(max_tokens=12))
    assert "," in free
    cut = gen.complete("Count: one, two, three,", GenerationParams(max_tokens=12, stop=(",",)))
    assert "," not in cut and free.startswith(cut)


@needs_llama
def test_seeded_samples_are_reproducible_and_do_not_depend_on_their_neighbours(llama: LlamaCppBackend) -> None:
    gen = Generator(llama, None)
    params = GenerationParams(temperature=1.0, max_tokens=8, n=3, seed=7)
    alone = gen.sample(["Once upon a time"], params)
    with_others = gen.sample([FRANCE, "Once upon a time", "Hello"], params)
    assert with_others[1] == alone[0]
    assert len(set(alone[0])) > 1  # three different samples
    assert gen.sample(["Once upon a time"], GenerationParams(temperature=1.0, max_tokens=8, n=3, seed=8)) != alone


@needs_llama
def test_a_row_longer_than_the_context_is_one_clear_error() -> None:
    from recwise.llm import LLMError

    small = Generator(LlamaCppBackend("smollm2", threads=1, context=64), None)
    with pytest.raises(LLMError, match="context"):
        small.complete("word " * 200, GenerationParams(max_tokens=4))


@needs_smollm
def test_options_are_checked_before_anything_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="threads"):
        LlamaCppBackend("smollm2", threads=0)
    with pytest.raises(ConfigError, match="parallel"):
        LlamaCppBackend("smollm2", parallel=True)
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="transformers"):
        LlamaCppBackend(str(folder))
    with pytest.raises(ConfigError, match="backend"):
        load_generator(backend="llama", cache=False)


def test_the_local_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RECWISE_LLM_BACKEND", raising=False)
    import recwise.llm._factory as factory
    import recwise.llm._llamacpp as lc

    monkeypatch.setattr(factory, "cuda_present", lambda: False)
    monkeypatch.setattr(lc, "llama_cpp_available", lambda: True)
    assert choose_local_backend("smollm2") == "llamacpp"
    assert choose_local_backend(str(tmp_path / "m.gguf")) == "llamacpp"
    assert choose_local_backend(str(tmp_path / "hf-folder")) == "transformers"
    assert choose_local_backend("smollm2", "cuda") == "transformers"
    monkeypatch.setattr(factory, "cuda_present", lambda: True)
    assert choose_local_backend("smollm2", "auto") == "transformers"
    assert choose_local_backend("smollm2", "cpu") == "llamacpp"
    monkeypatch.setattr(lc, "llama_cpp_available", lambda: False)
    assert choose_local_backend("smollm2", "cpu") == "transformers"
    monkeypatch.setenv("RECWISE_LLM_BACKEND", "llamacpp")
    assert choose_local_backend("smollm2", "cuda") == "llamacpp"
    monkeypatch.setenv("RECWISE_LLM_BACKEND", "vllm")
    with pytest.raises(ConfigError, match="RECWISE_LLM_BACKEND"):
        choose_local_backend("smollm2")


@needs_smollm
def test_answers_of_one_backend_never_serve_another(tmp_path: Path) -> None:
    cache = LLMCache(tmp_path / "c.sqlite")
    hf = Generator(LocalBackend("smollm2", device="cpu"), cache)
    llama = Generator(LlamaCppBackend("smollm2"), cache)
    params = GenerationParams(max_tokens=4)
    assert hf._key("Hi", params, 0) != llama._key("Hi", params, 0)
    assert hf.backend.fingerprint == llama.backend.fingerprint  # same weights; the backend name tells them apart


@needs_smollm
def test_fully_cached_work_never_loads_either_backend(tmp_path: Path) -> None:
    params = GenerationParams(max_tokens=6)
    for backend in (LocalBackend("smollm2", device="cpu"), LlamaCppBackend("smollm2")):
        cache = LLMCache(tmp_path / f"{backend.name}.sqlite")
        gen = Generator(backend, cache)
        key = gen._key(gen_prompt := [dict(m) for m in FRANCE], params, 0)
        cache.put_many([(key, "generate", backend.name, backend.fingerprint, b"Paris, of course.")])
        assert gen.generate([gen_prompt], params) == ["Paris, of course."]
        assert not backend.loaded and gen.backend_calls == 0


@needs_llama
def test_a_cached_cli_call_imports_neither_torch_nor_llama_cpp(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from recwise.cli import main\n"
        "rc = main(['llm', 'generate', 'Name one colour.', '--max-tokens', '6', '--cache-path', sys.argv[1]])\n"
        "print('MODULES', 'torch' in sys.modules, 'llama_cpp' in sys.modules, 'transformers' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("RECWISE_LLM_BACKEND", None)
    cache = str(tmp_path / "c.sqlite")
    first = subprocess.run([sys.executable, "-c", code, cache], capture_output=True, text=True, env=env, check=True)
    assert "[1 model call(s), 0 from cache]" in first.stderr and "MODULES False True False" in first.stdout
    second = subprocess.run([sys.executable, "-c", code, cache], capture_output=True, text=True, env=env, check=True)
    assert "[0 model call(s), 1 from cache]" in second.stderr
    assert "MODULES False False False" in second.stdout
    assert second.stdout.splitlines()[0] == first.stdout.splitlines()[0]  # the same answer


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server on the SmolLM2 file; yields its /v1 URL."""
    if not (HAS_LLAMA and HAS_SMOLLM) or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("optional: llama-cpp-python's server (llama-cpp-python, sse-starlette) is absent")
    import httpx

    from recwise.llm import resolve_model

    src = resolve_model("smollm2")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(src.folder / str(src.gguf_file)), "--port",
         str(port), "--n_threads", "1", "--n_ctx", "4096"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server not up after 60 s")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow  # a second process serving the model
def test_llama_cpp_server_through_the_http_backend_equals_the_local_backend(
        llama_server: str, llama: LlamaCppBackend) -> None:
    prompts: list[Any] = [FRANCE, "The opposite of hot is", [{"role": "user", "content": "Name two colours."}]]
    params = GenerationParams(max_tokens=16)
    # llama.cpp's server applies a repeat penalty of 1.1 unless told otherwise; greedy means argmax
    served = Generator(HttpBackend("smollm2", base_url=llama_server, extra_body={"repeat_penalty": 1.0}), None)
    assert served.generate(prompts, params) == Generator(llama, None).generate(prompts, params)
    default = Generator(HttpBackend("smollm2", base_url=llama_server), None)
    assert default.backend.fingerprint != served.backend.fingerprint  # extra_body is part of the cache key
