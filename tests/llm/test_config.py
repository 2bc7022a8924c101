"""Configs and parameters: bad values and unknown options are errors that name the option."""

from __future__ import annotations

import re

import pytest

import recwise.llm as llm
from recwise.errors import ConfigError, RecwiseError
from recwise.llm import GenerationParams, Generator, load_generator, params_from_mapping

from .conftest import FakeBackend, needs_smollm


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"n": 0}, "'n'"),
        ({"seed": "1"}, "seed"),
        ({"stop": "\n"}, "stop"),
        ({"stop": ("",)}, "stop"),
    ],
)
def test_bad_generation_params(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        GenerationParams(**kwargs)


def test_unknown_option_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        params_from_mapping({"temprature": 0.5})
    with pytest.raises(ConfigError, match="did you mean 'max_retries'"):
        load_generator(max_retry=2)
    assert params_from_mapping({"stop": "\n", "max_tokens": "8"}) == GenerationParams(stop=("\n",), max_tokens=8)


def test_bad_prompts_are_rejected() -> None:
    gen = Generator(FakeBackend(), None)
    with pytest.raises(ConfigError, match="single str"):
        gen.generate("hello")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="role"):
        gen.generate([[{"role": "robot", "content": "x"}]])
    with pytest.raises(ConfigError, match="use Generator.sample"):
        gen.generate(["x"], GenerationParams(n=2))


def test_unknown_local_model_and_http_without_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="neither a known name"):
        load_generator(model="no-such-model", cache=False)
    monkeypatch.delenv("RECWISE_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="RECWISE_LLM_BASE_URL"):
        load_generator(backend="http", model="m", cache=False)
    with pytest.raises(RecwiseError):
        load_generator(backend="http", model="m", base_url="ftp://x", cache=False)


def test_public_surface_is_sorted_and_complete() -> None:
    assert llm.__all__ == sorted(llm.__all__)
    assert all(hasattr(llm, name) for name in llm.__all__)
    public = {n for n in dir(llm) if not n.startswith("_") and n[0].isupper() and not re.match(r"^[A-Z_]+$", n)}
    assert public <= set(llm.__all__)


@needs_smollm
def test_a_dtype_selects_transformers_and_is_never_silently_ignored() -> None:
    gen = load_generator(dtype="bfloat16", cache=False)  # backend "local": llama.cpp would ignore a dtype
    assert gen.backend.name == "transformers" and gen.backend.fingerprint.endswith(":bfloat16")
    assert not gen.backend.loaded  # building reads no weights
    with pytest.raises(ConfigError, match="option 'dtype' applies to the transformers backend, not 'llamacpp'"):
        load_generator(backend="llamacpp", dtype="bfloat16", cache=False)
    with pytest.raises(ConfigError, match="not 'http'"):
        load_generator(backend="http", model="m", base_url="http://localhost:1/v1", dtype="bfloat16", cache=False)
    with pytest.raises(ConfigError, match="dtype"):
        load_generator(backend="transformers", dtype="int8", cache=False)
