"""The attack protocol on a deterministic fake backend: every attack's effect, the counted SEED-P
fallback, the defence and stealth figures, the per-question records, empty outputs, and resuming a
killed run from the cache without repeating calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recwise.data.reasoning import generate_arith
from recwise.errors import ConfigError
from recwise.llm import Generator, LLMCache
from recwise.tasks.attack.prompts import INSTRUCTION, SYSTEM, as_plain, chat, clean_query
from recwise.tasks.attack.protocol import AttackConfig, check_options, run
from tests.tasks.attack._fake import FakeBackend

PROBLEMS = generate_arith(n=6, steps=2)


def _gens(gen: Generator) -> dict[str, Any]:
    return {"target": gen, "assistant": gen, "detector": gen}


def _run(tmp_path: Path, attack: str, backend: FakeBackend | None = None, **kw: Any) -> tuple[dict[str, float], Any]:
    backend = backend or FakeBackend()
    gen = Generator(backend, LLMCache(str(tmp_path / "cache.sqlite")))
    out = tmp_path / attack
    rows = run(PROBLEMS, AttackConfig(attack=attack, **kw), model="fake", dataset="arith-easy-2", gens=_gens(gen),
               out_dir=out, progress=False)
    return {r.metric: r.value for r in rows}, out


def test_seed_p_falls_back_to_the_recomputed_chain_and_is_counted(tmp_path: Path) -> None:
    v, out = _run(tmp_path, "seed-p")
    assert v["clean_accuracy"] == 1.0  # the fake solves the generated problems
    assert v["rewrite_unusable_rate"] == 1.0 and v["fallback_rate"] == 1.0  # its rewrite keeps the question
    assert v["asr"] == 1.0 and v["attacked_accuracy"] == 0.0  # and it trusts the injected steps
    recs = [json.loads(line) for line in (out / "attacks.jsonl").read_text().splitlines()]
    assert len(recs) == 6
    for r, p in zip(recs, PROBLEMS):
        assert r["question"] == p.question and r["clean_status"] == "correct"
        assert r["injection_source"] == "fallback" and r["modified_question"] != p.question
        assert r["injected"].startswith("1. ") and " starts with " in r["injected"]
        assert "The answer is" not in r["injected"]
        assert r["preemptive"] not in (None, p.answer + ".")
        assert r["attacked_status"] == "wrong" and r["attacked_answer"] != p.answer
    info = json.loads((out / "run.json").read_text())
    assert info["segment"] == "attack=seed-p,sigma=0.6,shots=0"
    # 6 clean + 3 x 6 assistant + 6 attacked + 12 detector prompts; the assistant's solution of its
    # (unchanged) rewrite is the clean prompt again, so those 6 come from the cache
    assert v["llm_calls"] == 6 + 18 + 6 + 12 - 6 and v["llm_tokens"] == 7 * v["llm_calls"]


def test_a_usable_rewrite_is_injected_without_fallback(tmp_path: Path) -> None:
    rewrite = "Sam has 100 coins. He finds 1 more coins. How many coins does Sam have now?"
    v, out = _run(tmp_path, "seed-p", FakeBackend(rewrite=rewrite))
    assert v["fallback_rate"] == 0.0 and v["rewrite_unusable_rate"] == 0.0
    rec = json.loads((out / "attacks.jsonl").read_text().splitlines()[0])
    assert rec["modified_question"] == rewrite and rec["preemptive"] == "101."


def test_a_rewrite_that_repeats_the_question_is_unusable(tmp_path: Path) -> None:
    """A tiny assistant often returns the question unchanged and then solves it wrongly: that is no
    rewrite, so the fallback steps in (a different answer alone would not be enough)."""
    target = Generator(FakeBackend(), LLMCache(str(tmp_path / "t.sqlite")))
    assistant = Generator(FakeBackend(wrong=True), LLMCache(str(tmp_path / "a.sqlite")))
    rows = run(PROBLEMS, AttackConfig(detect=False), model="fake", dataset="d", progress=False,
               gens={"target": target, "assistant": assistant, "detector": target})
    v = {r.metric: r.value for r in rows}
    assert v["rewrite_unusable_rate"] == 1.0 and v["fallback_rate"] == 1.0
    other = FakeBackend(wrong=True, rewrite="Sam has 100 coins. He finds 1 more coins. How many coins?")
    rows = run(PROBLEMS, AttackConfig(detect=False), model="fake", dataset="d", progress=False,
               gens={"target": target, "assistant": Generator(other, None), "detector": target})
    assert {r.metric: r.value for r in rows}["fallback_rate"] == 0.0  # a new question with another answer


def test_baselines_defence_and_stealth(tmp_path: Path) -> None:
    mistake, _ = _run(tmp_path, "mistake", defence="self-review")
    assert mistake["detection_rate"] == 1.0 and mistake["detection_rate_clean"] == 0.0  # the fake flags "So far"
    assert mistake["defended_asr"] == 0.0 and mistake["defended_accuracy"] == 1.0  # its review recomputes
    seed_s, out = _run(tmp_path, "seed-s", sigma=0.4)
    assert seed_s["asr"] == 1.0 and seed_s["consistent_rate"] == 1.0  # the edited step still adds up
    assert seed_s["detection_rate"] == 0.0
    rec = json.loads((out / "attacks.jsonl").read_text().splitlines()[0])
    assert rec["injection_source"] == "own-trace" and rec["injected"].count("\n\n") == 1  # floor(0.4 * 3) = 1 step
    pre, _ = _run(tmp_path, "preemptive", detect=False)
    assert pre["asr"] == 1.0 and "detection_rate" not in pre


def test_empty_outputs_are_counted_unparsable(tmp_path: Path) -> None:
    v, _ = _run(tmp_path, "preemptive", FakeBackend(empty=True), detect=False)
    assert v["clean_accuracy"] == 0.0 and v["clean_unparsable"] == 6 and v["empty_output_rate"] == 1.0
    assert v["asr"] != v["asr"]  # nan: no question was right without the attack


class _Dies(FakeBackend):
    """Fails once ``budget`` rows have been generated (a run killed mid-way)."""

    budget: int = 10**9

    def complete(self, rows: Any) -> Any:
        if len(rows) > self.budget:
            raise KeyboardInterrupt
        self.budget -= len(rows)
        return super().complete(rows)


def test_a_killed_run_resumes_from_the_cache_and_a_rerun_is_free(tmp_path: Path) -> None:
    dying = _Dies()
    dying.budget = 6 + 4  # the clean stage, then one chunk of 4 of the assistant's first stage
    gen = Generator(dying, LLMCache(str(tmp_path / "cache.sqlite")))
    with pytest.raises(KeyboardInterrupt):
        run(PROBLEMS, AttackConfig(chunk=4), model="fake", dataset="d", gens=_gens(gen), progress=False)
    again = FakeBackend()
    v = {r.metric: r.value for r in run(PROBLEMS, AttackConfig(chunk=4), model="fake", dataset="d",
                                        gens=_gens(Generator(again, LLMCache(str(tmp_path / "cache.sqlite")))),
                                        progress=False)}
    assert v["llm_calls"] == 36 - 10  # the finished chunks were not asked again
    third = FakeBackend()
    run(PROBLEMS, AttackConfig(chunk=4), model="fake", dataset="d",
        gens=_gens(Generator(third, LLMCache(str(tmp_path / "cache.sqlite")))), progress=False)
    assert third.seen == []  # a re-run makes zero model calls


@pytest.mark.parametrize(("options", "match"), [
    ({"attack": {"sigma": "0"}}, r"attack.sigma' must be in \(0, 1\]"),
    ({"attack": {"shots": "4"}}, r"attack.shots' must be in \[0, 3\]"),
    ({"attack": {"attak": "seed-p"}}, "unknown option 'attack.attak'.*attack"),
    ({"attack": {"attack": "seed-x"}}, "must be one of"),
    ({"llm": {"modle": "x"}}, "unknown option 'llm.modle'"),
    ({"arith": {"steps": "9"}}, r"arith.steps' must be in \[1, 6\]"),
])
def test_bad_options_are_errors(options: dict[str, dict[str, str]], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_options(options)


def test_attack_none_is_the_clean_run_only(tmp_path: Path) -> None:
    backend = FakeBackend()
    v, out = _run(tmp_path, "none", backend)
    assert v["clean_accuracy"] == 1.0 and v["questions"] == 6 and v["clean_unparsable"] == 0
    assert v["llm_calls"] == 6 and len(backend.seen) == 6  # no injection, attacked or detector call
    assert "asr" not in v and "detection_rate" not in v
    rec = json.loads((out / "attacks.jsonl").read_text().splitlines()[0])
    assert rec["clean_status"] == "correct" and "attacked_output" not in rec
    with pytest.raises(ConfigError, match="needs an attack"):
        AttackConfig(attack="none", defence="self-review")


class _Plain(FakeBackend):
    """Answers plain-text prompts (a base model's continuation) as the fake answers one user turn."""

    def _answer(self, prompt: Any) -> str:
        assert isinstance(prompt, str)
        return super()._answer([{"role": "user", "content": prompt.removeprefix(SYSTEM + "\n\n")}])


def test_plain_prompts_for_base_models(tmp_path: Path) -> None:
    backend = _Plain()
    v, out = _run(tmp_path, "preemptive", backend, detect=False, prompt="plain")
    assert json.loads((out / "run.json").read_text())["segment"] == "attack=preemptive,sigma=0.6,shots=0,prompt=plain"
    assert v["clean_accuracy"] == 1.0 and v["asr"] == 1.0  # the same protocol, through plain texts
    assert len(backend.seen) == 12 and all(isinstance(p, str) for p in backend.seen)
    clean = as_plain(chat("number", clean_query(PROBLEMS[0], 0)))
    assert clean in backend.seen
    assert clean.startswith(SYSTEM + "\n\n" + INSTRUCTION) and clean.endswith("[Solution] \n\n")


def test_the_default_chunk_fills_the_local_backends_batches() -> None:
    from recwise.llm._llamacpp import DEFAULT_BATCH

    assert AttackConfig().chunk >= 2 * DEFAULT_BATCH  # two one-thread contexts of DEFAULT_BATCH rows each
