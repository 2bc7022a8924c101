"""Synthesis: the two turns through the LLM cache, the guard, the counts and the JSONL log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from recwise.errors import ConfigError
from recwise.llm import Generator, LLMCache
from recwise.tasks.retrieval.synthesis import SynthConfig, draft_prompt, reflection_prompt, synthesise
from tests.tasks.retrieval.conftest import ScriptedBackend


class BagEncoder:
    """Unit vectors of letter counts: similar texts, similar vectors (deterministic)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        x = np.array([[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts], dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


PAIRS = [(0, "what about heat conduction?", "heat conduction in composite slabs measured in detail"),
         (1, "what about wing lift?", "wing slipstream propeller lift measured at several angles"),
         (2, "flutter?", "flutter of a panel at supersonic speed measured in a wind tunnel")]


def test_prompts_carry_every_attribute_and_the_draft() -> None:
    d = draft_prompt("q?", "a positive passage", 100)
    assert "does NOT answer the query" in d[1]["content"] and "same technical terms" in d[1]["content"]
    r = reflection_prompt(d, "my draft")
    assert [m["role"] for m in r] == ["system", "user", "assistant", "user"] and r[2]["content"] == "my draft"
    assert "REJECT" in r[3]["content"]


def test_counts_guard_log_and_a_rerun_without_model_calls(tmp_path: Path) -> None:
    backend = ScriptedBackend()
    gen = Generator(backend, LLMCache(tmp_path / "cache.sqlite"))
    cfg = SynthConfig(band_lo=-1.0, band_hi=1.0, tau=0.999, min_words=5)
    res = synthesise(gen, BagEncoder(), PAIRS, cfg, np.array([]), tmp_path / "neg.jsonl")
    c = res.counts
    assert (c["pairs"], c["kept"], c["rejected_by_reflection"], c["rejected_by_guard"]) == (3, 2, 1, 0)
    assert c["llm_calls"] == 6 and c["cache_hits"] == 0 and sorted(res.negatives) == [1, 2]
    log = [json.loads(line) for line in (tmp_path / "neg.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in log] == ["rejected-by-reflection", "kept", "kept"] and "cos_query" in log[1]
    again = synthesise(Generator(backend, LLMCache(tmp_path / "cache.sqlite")), BagEncoder(), PAIRS, cfg, np.array([]))
    assert again.counts["llm_calls"] == 0 and again.counts["cache_hits"] == 6 and again.negatives == res.negatives
    # a tight tau catches negatives that copy the positive
    strict = synthesise(Generator(backend, None), BagEncoder(), PAIRS,
                        SynthConfig(band_lo=-1.0, band_hi=1.0, tau=0.5, min_words=5), np.array([]))
    assert strict.counts["kept"] == 0 and strict.counts["guard_reasons"] == {"copies-positive": 2}


def test_default_band_comes_from_the_mined_cosines(tmp_path: Path) -> None:
    res = synthesise(Generator(ScriptedBackend(), None), BagEncoder(), PAIRS, SynthConfig(min_words=5),
                     np.array([0.99, 0.995, 1.0]))
    assert res.counts["band"][0] >= 0.99 and res.counts["guard_reasons"].get("query-band") == 2


@pytest.mark.parametrize(("kwargs", "message"), [({"max_tokens": 0}, "synth.max_tokens"),
                                                 ({"queries": -1}, "synth.queries"), ({"tau": 2.0}, "synth.tau")])
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**kwargs)


def test_a_counted_generator_reports_completion_tokens(tmp_path: Path) -> None:
    from recwise.llm import Completion, counted

    class Tokens(ScriptedBackend):
        def complete(self, rows: Sequence) -> list[Completion]:
            return [Completion(c.text, 5, len(c.text.split())) for c in super().complete(rows)]

    gen = counted(Generator(Tokens(), LLMCache(tmp_path / "c.sqlite")))
    cfg = SynthConfig(band_lo=-1.0, band_hi=1.0, tau=0.999, min_words=5)
    first = synthesise(gen, BagEncoder(), PAIRS, cfg, np.array([]))
    assert first.counts["llm_calls"] == 6 and first.counts["completion_tokens"] > 6
    again = synthesise(gen, BagEncoder(), PAIRS, cfg, np.array([]))
    assert again.counts["llm_calls"] == 0 and again.counts["completion_tokens"] == 0
    assert "completion_tokens" not in synthesise(Generator(Tokens(), None), BagEncoder(), PAIRS, cfg,
                                                 np.array([])).counts  # no counting backend, no token figure
