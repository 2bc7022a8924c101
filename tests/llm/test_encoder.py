"""The encoder on the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recwise.errors import ConfigError
from recwise.llm import Encoder, LLMCache

from .conftest import needs_minilm

pytestmark = needs_minilm


def test_unit_norm_and_similar_texts_are_closer(minilm: Any) -> None:
    enc = Encoder(minilm, None, show_progress=False)
    v = enc.encode(["A cat sits on the mat.", "A kitten is lying on a rug.", "Stock markets fell sharply today."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2


def test_batches_and_cache(minilm: Any, tmp_path: Path) -> None:
    texts = [f"item number {i}" for i in range(10)] + ["item number 3"]
    path = tmp_path / "c.sqlite"
    enc = Encoder(minilm, LLMCache(path), batch_size=4, show_progress=False)
    v = enc.encode(texts)
    assert enc.backend_calls == 10  # the duplicate is embedded once
    np.testing.assert_array_equal(v[3], v[10])
    again = Encoder(minilm, LLMCache(path), batch_size=4, show_progress=False)
    np.testing.assert_allclose(again.encode(texts), v, atol=1e-6)
    assert again.backend_calls == 0
    single = Encoder(minilm, None, batch_size=64, show_progress=False).encode(texts[:4])
    np.testing.assert_allclose(single, v[:4], atol=1e-5)  # batch size does not change vectors


@pytest.mark.parametrize(("texts", "pattern"), [("one", "single str"), ([], "empty"), (["a", 3], r"texts\[1\]")])
def test_bad_inputs(minilm: Any, texts: Any, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        Encoder(minilm, None).encode(texts)
