"""The local backend on the real SmolLM2-135M weights (loaded once per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recwise.errors import ConfigError
from recwise.llm import GenerationParams, Generator, LLMCache, LocalBackend

from .conftest import needs_smollm

pytestmark = needs_smollm

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def test_greedy_chat_answers_and_is_repeatable(smollm: Any) -> None:
    gen = Generator(smollm, None)
    params = GenerationParams(max_tokens=10)
    first = gen.complete(FRANCE, params)
    assert "Paris" in first
    assert gen.complete(FRANCE, params) == first


def test_batched_greedy_equals_one_by_one(smollm: Any) -> None:
    gen = Generator(smollm, None)
    prompts: list[Any] = [FRANCE, "The opposite of hot is", [{"role": "user", "content": "Name a fruit."}]]
    params = GenerationParams(max_tokens=6)
    batched = gen.generate(prompts, params)
    assert batched == [gen.complete(p, params) for p in prompts]


def test_seeded_samples_are_reproducible_and_batch_independent(smollm: Any) -> None:
    gen = Generator(smollm, None)
    params = GenerationParams(temperature=1.0, max_tokens=6, n=3, seed=7)
    a = gen.sample(["Once upon a time", FRANCE], params)
    assert gen.sample(["Once upon a time", FRANCE], params) == a
    assert gen.sample([FRANCE], params)[0] == a[1]  # a sample does not depend on its batch mates
    assert len(set(a[0])) > 1  # sampling, not greedy
    other = gen.sample(["Once upon a time"], GenerationParams(temperature=1.0, max_tokens=6, n=3, seed=8))
    assert other[0] != a[0]


def test_stop_string_ends_the_text(smollm: Any) -> None:
    gen = Generator(smollm, None)
    free = gen.complete("1, 2, 3, 4,", GenerationParams(max_tokens=12))
    assert " 6" in free  # the model does count on
    stopped = gen.complete("1, 2, 3, 4,", GenerationParams(max_tokens=12, stop=(" 6",)))
    assert free.startswith(stopped) and " 6" not in stopped and len(stopped) < len(free)


def test_cached_rerun_makes_no_model_call(smollm: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    first = Generator(smollm, LLMCache(path))
    text = first.complete(FRANCE, GenerationParams(max_tokens=8))
    second = Generator(smollm, LLMCache(path))
    assert second.complete(FRANCE, GenerationParams(max_tokens=8)) == text and second.backend_calls == 0


def test_model_is_loaded_once_per_process(smollm: Any) -> None:
    again = LocalBackend("smollm2", device="cpu")
    assert again.model is smollm.model and again.fingerprint.startswith("smollm2:")


def test_local_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a known name"):
        LocalBackend(str(tmp_path / "missing.gguf"))
    with pytest.raises(ConfigError, match="batch_size"):
        LocalBackend("smollm2", batch_size=0)


@pytest.mark.slow  # two loads of the model (one de-quantizes the GGUF file)
def test_the_dequantized_copy_loads_fast_and_gives_the_same_text(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from recwise.llm._local import _load_weights, dequantized_dir, resolve_model

    monkeypatch.setenv("RECWISE_HOME", str(tmp_path))
    source = resolve_model("smollm2")
    kept = dequantized_dir(source)
    assert kept.is_relative_to(tmp_path) and not kept.exists()

    def greedy(tok: Any, model: Any) -> str:
        enc = tok("The capital of France is", return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
        return str(tok.decode(out[0, enc["input_ids"].shape[1]:]))

    first = greedy(*_load_weights(source))
    assert (kept / "config.json").exists() and list(kept.glob("*.safetensors"))
    assert not list(kept.parent.glob("*.tmp*"))  # written under a temporary name, then renamed
    import recwise.llm._local as local

    calls: list[tuple[Path, str | None]] = []
    real = local._from_pretrained
    monkeypatch.setattr(local, "_from_pretrained",
                        lambda folder, label, gguf: calls.append((folder, gguf)) or real(folder, label, gguf))
    tok, model = _load_weights(source)
    assert calls == [(kept, None)]  # the kept safetensors, not the GGUF file again
    assert greedy(tok, model) == first


def test_bfloat16_weights_are_a_separate_copy_with_their_own_fingerprint(smollm: Any) -> None:
    import torch

    bf = LocalBackend("smollm2", device="cpu", dtype="bfloat16")
    assert bf.fingerprint == smollm.fingerprint + ":bfloat16"  # its texts never answer a float32 lookup
    assert bf.model is not smollm.model
    assert {p.dtype for p in bf.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in smollm.model.parameters()} == {torch.float32}  # the shared float32 copy is untouched
    text = Generator(bf, None).complete(FRANCE, GenerationParams(max_tokens=10))
    assert "Paris" in text
    with pytest.raises(ConfigError, match="option 'dtype'"):
        LocalBackend("smollm2", dtype="int8")
