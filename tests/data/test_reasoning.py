"""Reasoning problems: the GSM8K reader on the real test file, the other public layouts on small
files, bad input (one line naming file and line), the arithmetic generator and the chain rewrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recwise.data.reasoning import (
    ArithConfig,
    Problem,
    eval_arithmetic,
    generate_arith,
    load_problems,
    perturb_problem,
    read_csqa,
    read_gsm8k,
    read_math,
    read_mathqa,
    split_steps,
)
from recwise.errors import ConfigError, DataError
from tests.conftest import SHARED

GSM8K = SHARED / "data" / "reasoning" / "gsm8k" / "test.jsonl"
needs_gsm8k = pytest.mark.skipif(not GSM8K.exists(), reason=f"{GSM8K} missing")


@needs_gsm8k
def test_gsm8k_real_file() -> None:
    ps = read_gsm8k(GSM8K)
    assert len(ps) == 1319
    first = ps[0]
    assert first.answer == "18" and first.kind == "number"
    assert [c.expr for c in first.chain] == ["16-3-4", "9*2"] and [c.result for c in first.chain] == [9.0, 18.0]
    assert first.solution[0] == "Janet sells 16 - 3 - 4 = 9 duck eggs a day."  # annotation removed
    assert ps[2].answer == "70000"  # "#### 70,000"-style gold without commas


@needs_gsm8k
def test_gsm8k_rewrite_recomputes_the_chain() -> None:
    ps = read_gsm8k(GSM8K)[:100]
    rewritten = [(p, perturb_problem(p)) for p in ps]
    done = [(p, q) for p, q in rewritten if q is not None]
    assert len(done) >= 80  # most problems have a number that feeds the chain
    for p, q in done:
        assert q.answer != p.answer
        for c in q.chain:  # every recomputed step holds
            assert eval_arithmetic(c.expr) == pytest.approx(c.result)
        assert float(q.answer) == pytest.approx(q.chain[-1].result)
        assert q.question != p.question
    robe = ps[1]  # "2 bolts ... half that much": 2/2 uses the 2 twice, so 2 is not a leaf to change
    assert perturb_problem(robe) is None


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_gsm8k_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"question": "q?", "answer": "1+1=<<1+1=2>>2\n#### 2"})
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        read_gsm8k(_write(tmp_path / "bad.jsonl", [good, "{oops"]))
    with pytest.raises(DataError, match=r"nogold\.jsonl:1: no parsable gold answer"):
        read_gsm8k(_write(tmp_path / "nogold.jsonl", [json.dumps({"question": "q?", "answer": "it is two"})]))
    with pytest.raises(DataError, match=r"empty\.jsonl:1: missing or empty field 'question'"):
        read_gsm8k(_write(tmp_path / "empty.jsonl", [json.dumps({"question": "", "answer": "#### 2"})]))
    with pytest.raises(DataError, match="no such file"):
        read_gsm8k(tmp_path / "absent.jsonl")


def test_csqa_mathqa_math_layouts(tmp_path: Path) -> None:
    csqa = {"answerKey": "B", "id": "x1", "question": {"stem": "Where are plates kept?", "choices": [
        {"label": "A", "text": "floor"}, {"label": "B", "text": "cupboard"}]}}
    p = read_csqa(_write(tmp_path / "dev_rand_split.jsonl", [json.dumps(csqa)]))[0]
    assert p.question == "Where are plates kept? Answer Choices: (A) floor (B) cupboard"
    assert (p.answer, p.kind) == ("B", "choice")
    with pytest.raises(DataError, match=r"dev2\.jsonl:1: no parsable gold answer"):
        read_csqa(_write(tmp_path / "dev2.jsonl", [json.dumps({**csqa, "answerKey": "Z"})]))

    mq = [{"Problem": "what is 2 + 3 ?", "options": "a ) 4 , b ) 5 , c ) 6 , d ) 7 , e ) 8", "correct": "b"}]
    (tmp_path / "test.json").write_text(json.dumps(mq))
    m = read_mathqa(tmp_path / "test.json")[0]
    assert m.question == "what is 2 + 3 ?\na ) 4\nb ) 5\nc ) 6\nd ) 7\ne ) 8" and m.answer == "b"

    alg = tmp_path / "MATH" / "test" / "algebra"
    alg.mkdir(parents=True)
    (alg / "1.json").write_text(json.dumps({"problem": "x+1=3", "level": "Level 1", "type": "Algebra",
                                            "solution": "So $x=\\boxed{\\frac{4}{2}}$."}))
    (alg / "2.json").write_text(json.dumps({"problem": "hard", "level": "Level 5", "solution": "\\boxed{9}"}))
    probs = read_math(tmp_path / "MATH")
    assert [(q.answer, q.kind) for q in probs] == [("\\frac{4}{2}", "math")]  # level 5 left out; braces balanced


def test_arith_generator_chains_hold_and_settings_are_checked() -> None:
    for difficulty in ("easy", "hard"):
        ps = generate_arith(n=30, steps=3, difficulty=difficulty, seed=1)
        assert ps == generate_arith(n=30, steps=3, difficulty=difficulty, seed=1)  # deterministic
        for p in ps:
            assert len(p.chain) == 3 and len(p.solution) == 4  # "X starts with N", then one step per operation
            assert p.solution[0] == p.question.split(".")[0].replace(" has ", " starts with ") + "."
            for step, c in zip(p.solution[1:], p.chain):  # each step restates its sentence, then computes
                assert c.expr.replace("*", " x ").replace("+", " + ").replace("-", " - ") + " = " in step
            value = None
            for c in p.chain:
                assert eval_arithmetic(c.expr) == c.result
                if value is not None:
                    assert c.expr.startswith(str(int(value)))  # each step starts from the last result
                value = c.result
            assert p.answer == str(int(value))
            assert max(c.result for c in p.chain) <= (50 if difficulty == "easy" else 2000)
        if difficulty == "easy":
            assert all("*" not in c.expr for p in ps for c in p.chain)
    assert any("*" in c.expr for p in generate_arith(n=30, steps=3, difficulty="hard") for c in p.chain)
    for bad in ({"steps": 0}, {"steps": 7}, {"difficulty": "medium"}, {"n": 0}):
        with pytest.raises(ConfigError, match="arith"):
            ArithConfig(**bad)  # type: ignore[arg-type]


def test_arith_rewrite_changes_one_number_and_the_answer() -> None:
    for p in generate_arith(n=40, steps=2, difficulty="easy"):
        q = perturb_problem(p, seed=3)
        assert q is not None
        before, after = p.question.split(), q.question.split()
        assert sum(a != b for a, b in zip(before, after)) == 1  # exactly one number changed
        assert q.answer != p.answer and float(q.answer) == q.chain[-1].result
        assert all(eval_arithmetic(c.expr) == c.result for c in q.chain)
    assert perturb_problem(Problem("x", "no chain", "3")) is None


def test_split_steps_and_load_problems() -> None:
    assert split_steps("1. a\n\n2. b\n \n\nThe answer is: 3") == ["1. a", "2. b", "The answer is: 3"]
    assert len(load_problems("arith", limit=5)) == 5
    with pytest.raises(DataError, match="needs its file"):
        load_problems("gsm8k")
    with pytest.raises(ConfigError, match="unknown reasoning dataset 'gsm8"):
        load_problems("gsm8", "x")
    with pytest.raises(ValueError, match="not an arithmetic expression"):
        eval_arithmetic("__import__('os')")
