"""Batched llama.cpp decoding: same texts as one row per context, samples independent of the batch."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recwise.errors import ConfigError
from recwise.llm import GenerationParams, Generator, LlamaCppBackend, Row
from recwise.llm._llamacpp_batch import RowSampler

from .conftest import HAS_SMOLLM

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
needs_llama = pytest.mark.skipif(
    not (HAS_LLAMA and HAS_SMOLLM),
    reason="optional: llama-cpp-python (it builds from source in scripts/setup.sh) or the SmolLM2 wheel is absent")

PROMPTS: list[Any] = [
    [{"role": "user", "content": "What is the capital of France?"}],
    "The opposite of hot is",
    [{"role": "user", "content": "Name a fruit."}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Sky?"}],
    "Count: one, two, three,",
    [{"role": "user", "content": "Write a short story about a lighthouse keeper."}],
    [{"role": "user", "content": "Explain how bread is made to a child. Be precise."}],
    "Once upon a time",
]


@pytest.fixture(scope="module")
def batched() -> LlamaCppBackend:
    if not (HAS_LLAMA and HAS_SMOLLM):
        pytest.skip("optional: llama-cpp-python or the SmolLM2 wheel is absent")
    return LlamaCppBackend("smollm2", threads=1, decoding="batched", batch=8)


@pytest.fixture(scope="module")
def pool() -> LlamaCppBackend:
    if not (HAS_LLAMA and HAS_SMOLLM):
        pytest.skip("optional: llama-cpp-python or the SmolLM2 wheel is absent")
    return LlamaCppBackend("smollm2", threads=1, decoding="pool")


@needs_llama
def test_batched_greedy_texts_equal_one_row_per_context(batched: LlamaCppBackend, pool: LlamaCppBackend) -> None:
    for params in (GenerationParams(max_tokens=24), GenerationParams(max_tokens=12, stop=(",", "."))):
        rows = [Row(p, params, 0) for p in PROMPTS]
        got = batched.complete(rows)
        want = pool.complete(rows)  # llama-cpp-python's create_(chat_)completion, one row at a time
        assert [c.text for c in got] == [c.text for c in want]
        assert [c.completion_tokens for c in got] == [c.completion_tokens for c in want]
        assert [c.prompt_tokens for c in got] == [c.prompt_tokens for c in want]
        assert [c.finish_reason for c in got] == [c.finish_reason for c in want]


@needs_llama
def test_a_rows_logits_do_not_depend_on_the_rows_beside_it(batched: LlamaCppBackend) -> None:
    """The property that makes batched texts equal: llama.cpp computes each row on its own."""
    import llama_cpp

    from recwise.llm._llamacpp_batch import BatchDecoder, prepare_row

    batched.complete([Row("Hi", GenerationParams(max_tokens=1), 0)])  # loads the model
    llm = batched._llm
    params = GenerationParams(max_tokens=4)
    prep = [prepare_row(llm, i, Row(p, params, 0), 1024) for i, p in enumerate(PROMPTS)]
    dec = BatchDecoder(llm, 8, 256, 1)
    try:
        def last_logits(idx: list[int], steps: int = 3) -> np.ndarray:
            llama_cpp.llama_memory_clear(dec.mem, True)
            firsts = []
            for s, i in enumerate(idx):
                toks = prep[i].tokens
                for j, t in enumerate(toks):
                    dec._put(j, t, j, s, j == len(toks) - 1)
                dec._decode(len(toks))
                firsts.append(np.ctypeslib.as_array(llama_cpp.llama_get_logits(dec.ctx), shape=(dec.n_vocab,)).copy())
            nxt = np.argmax(np.stack(firsts), axis=1)
            pos = [len(prep[i].tokens) for i in idx]
            for _ in range(steps):
                for s in range(len(idx)):
                    dec._put(s, int(nxt[s]), pos[s], s, True)
                    pos[s] += 1
                dec._decode(len(idx))
                out = np.ctypeslib.as_array(llama_cpp.llama_get_logits(dec.ctx), shape=(len(idx), dec.n_vocab)).copy()
                nxt = np.argmax(out, axis=1)
            return out

        alone = last_logits([5])[0]
        assert np.array_equal(last_logits([5, 0, 1, 2])[0], alone)
        assert np.array_equal(last_logits([7, 6, 5, 4, 3, 2, 1, 0])[2], alone)
    finally:
        dec.close()


@needs_llama
def test_samples_do_not_depend_on_batch_composition_nor_on_the_mode(batched: LlamaCppBackend,
                                                                   pool: LlamaCppBackend) -> None:
    params = GenerationParams(temperature=1.0, top_p=0.9, max_tokens=10, n=3, seed=11)
    gen = Generator(batched, None)
    alone = gen.sample(["Once upon a time"], params)[0]
    among = gen.sample([PROMPTS[0], "Once upon a time", *PROMPTS[2:6]], params)[1]
    narrow = Generator(LlamaCppBackend("smollm2", threads=1, batch=2), None).sample(
        ["Hello", "Once upon a time", PROMPTS[0]], params)[1]
    assert alone == among == narrow
    assert len(set(alone)) > 1
    assert Generator(pool, None).sample(["Once upon a time"], params)[0] == alone  # same sampler in both modes
    mixed = gen.generate(["Once upon a time", "Once upon a time"], GenerationParams(max_tokens=10))
    assert mixed[0] == mixed[1]  # greedy rows beside sampled ones are unaffected


def test_the_row_sampler_is_one_seeded_stream_per_row() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=1000).astype(np.float32) * 3
    draws = [RowSampler(1.0, 1.0, 5).pick(logits) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]  # same seed, same first token
    one = RowSampler(0.8, 0.95, 5)
    seq = [one.pick(logits) for _ in range(50)]
    again = RowSampler(0.8, 0.95, 5)
    assert [again.pick(logits) for _ in range(50)] == seq
    assert len(set(seq)) > 5
    # top-p keeps the smallest set of most likely tokens holding p of the mass
    p = np.exp(logits.astype(np.float64) / 0.8)
    p /= p.sum()
    order = np.argsort(-p)
    nucleus = set(order[: int(np.searchsorted(np.cumsum(p[order]), 0.95)) + 1].tolist())
    many = RowSampler(0.8, 0.95, 9)
    assert {many.pick(logits) for _ in range(2000)} <= nucleus
    assert RowSampler(1.0, 1e-6, 3).pick(logits) == int(np.argmax(logits))
    cold = RowSampler(0.01, 1.0, 3)
    assert all(cold.pick(logits) == int(np.argmax(logits)) for _ in range(20))
    masked = RowSampler(1.0, 1.0, 4)(None, logits)
    assert np.isfinite(masked).sum() == 1  # as a logits processor: one token left for llama.cpp's greedy step


def test_batched_options_are_checked() -> None:
    if not HAS_SMOLLM:
        pytest.skip("optional: the SmolLM2 wheel is absent")
    with pytest.raises(ConfigError, match="decoding"):
        LlamaCppBackend("smollm2", decoding="fast")
    with pytest.raises(ConfigError, match="batch"):
        LlamaCppBackend("smollm2", batch=0)
    with pytest.raises(ConfigError, match="quant"):
        LlamaCppBackend("smollm2", quant="q4_1")
    plain = LlamaCppBackend("smollm2")
    assert LlamaCppBackend("smollm2", quant="iq4_nl").fingerprint == plain.fingerprint + ":requant-iq4_nl"


@needs_llama
def test_requantization_is_opt_in_made_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path))
    backend = LlamaCppBackend("smollm2", threads=1, quant="q4_0")
    text = Generator(backend, None).complete("The opposite of hot is", GenerationParams(max_tokens=6))
    made = list((tmp_path / "models" / "requantized").glob("*.q4_0.gguf"))
    assert len(made) == 1 and made[0].stat().st_size > 50_000_000 and text
    assert not list((tmp_path / "models" / "requantized").glob(".*tmp"))
    stamp = made[0].stat().st_mtime_ns
    Generator(LlamaCppBackend("smollm2", threads=1, quant="q4_0"), None).complete("Hi", GenerationParams(max_tokens=2))
    assert made[0].stat().st_mtime_ns == stamp  # reused, not made again


@needs_llama
def test_fewer_rows_than_contexts_share_all_threads() -> None:
    """One prompt on a 2-context backend decodes on both threads; many prompts go back to one each."""
    two = LlamaCppBackend("smollm2", threads=2, parallel=2, decoding="batched", batch=4)
    params = GenerationParams(max_tokens=8)
    one_text = two.complete([Row(PROMPTS[0], params, 0)])[0].text
    assert [d.threads for d in two._decoders] == [2]
    many = two.complete([Row(p, params, 0) for p in PROMPTS])
    assert [d.threads for d in two._decoders] == [1, 1]
    # the same greedy text whichever thread count decoded it
    assert many[0].text == one_text
