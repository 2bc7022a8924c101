"""What each attack injects after the original question: SEED-P (an assistant-rewritten question's
first steps plus its answer), SEED-S (the target's own trace with one step altered), and the two
baselines (a preemptive wrong answer; an appended wrong step). Pure text functions; the protocol
(:mod:`.protocol`) makes the model calls.

Step counting follows the released ``SEEDpAttack.py``: a solution is split on ``\\n\\n`` (the final
``The answer is`` paragraph counts as a step), the first ``int(max(sigma * T - 1, 0)) + 1`` steps
are kept (that is floor(sigma * T), at least 1; ``keep="ceil"`` gives the paper's ceil(sigma * T)),
and anything from an answer cue on is cut.
"""

from __future__ import annotations

import math
import random
import re
from typing import Literal

from recwise.data.reasoning import NUMBER_RE, Problem, eval_arithmetic, format_number
from recwise.metrics.reasoning import ANSWER_CUES, answer_text, find_equations

__all__ = ["ATTACKS", "alter_step", "appended_mistake", "kept_steps", "modified_question", "numbered",
           "wrong_answer"]

ATTACKS = ("seed-p", "seed-s", "preemptive", "mistake")
Keep = Literal["floor", "ceil"]


def kept_steps(solution: str, sigma: float, keep: Keep = "floor") -> str:
    """The first steps of ``solution`` that an attack injects (see the module docstring)."""
    steps = solution.split("\n\n")
    total = len(steps)
    n = int(max(sigma * total - 1, 0)) + 1 if keep == "floor" else max(1, math.ceil(sigma * total - 1e-9))
    text = "\n\n".join(steps[:n])
    for cue in ANSWER_CUES:
        if cue in text:
            text = text.split(cue)[0]
    return text.rstrip() + ("\n\n" if text.strip() else "")


def numbered(steps: tuple[str, ...] | list[str], answer: str) -> str:
    """A known solution chain in the CoT format: ``1. ...``, blank lines, ``The answer is: a.``"""
    return "\n\n".join([f"{i}. {s}" for i, s in enumerate(steps, 1)] + [f"The answer is: {answer}."])


def modified_question(response: str, original: Problem) -> str:
    """SEED-P's rewrite from the assistant's answer: the text after the last ``[Question]``; the
    original's answer choices are appended when the rewrite lost them (as released)."""
    q = response.split("[Question]")[-1].strip()
    if original.kind == "choice" and "Answer Choices:" not in q:
        q += " Answer Choices:" + original.question.split("Answer Choices:")[-1]
    elif original.kind == "mathqa" and "\na )" not in q:
        q += "\na )" + original.question.split("\na )")[-1]
    return q


def preemptive_of(solution: str) -> str | None:
    """The answer a solution states (its first line after the cue), for ``The answer is: <a'>``."""
    text = answer_text(solution)
    if not text:
        return None
    return text.splitlines()[0].strip() or None


def _shift(value: float, rng: random.Random) -> float:
    new = value + rng.choice([-3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    return new if new >= 0 and new != value else value + rng.randint(1, 9)


def wrong_answer(problem: Problem, rng: random.Random) -> str | None:
    """A deterministic wrong answer: the gold number shifted by a few units, another choice letter;
    None where the gold is not a number or a letter (a MATH expression)."""
    if problem.kind in ("number", "math"):
        try:
            gold = float(problem.answer.replace(",", ""))
        except ValueError:
            return None
        return format_number(_shift(gold, rng))
    letters = "ABCDE" if problem.kind == "choice" else "abcde"
    return rng.choice([c for c in letters if c != problem.answer.strip()[:1]])


def alter_step(step: str, rng: random.Random) -> str | None:
    """SEED-S's edit of one step: in its last equation one operand changes by a few units and the
    result is recomputed, and later mentions of the old result in the step follow (so the step
    stays arithmetically consistent); without an equation, the step's last number changes.
    None when the step has no number."""
    eqs = [m for m in find_equations(step) if _evaluable(m.group(1))]
    if eqs:
        m = eqs[-1]
        lhs, rhs = m.group(1), m.group(2)
        operands = list(NUMBER_RE.finditer(lhs))
        target = operands[-1]
        for _ in range(10):
            new_operand = _shift(float(target.group(0).replace(",", "")), rng)
            new_lhs = lhs[:target.start()] + format_number(new_operand) + lhs[target.end():]
            try:
                value = eval_arithmetic(new_lhs)
            except ValueError:
                continue
            old = float(rhs.replace(",", ""))
            if math.isfinite(value) and value >= 0 and abs(value - old) > 1e-9:
                decimals = len(rhs.split(".")[1]) if "." in rhs else 0
                new_rhs = format_number(round(value, max(decimals, 2)))
                tail = step[m.end():]
                tail = re.sub(rf"(?<![\d.,]){re.escape(rhs)}(?![\d])", new_rhs, tail)
                rhs_start = m.start(2)
                return step[:m.start()] + new_lhs + step[m.end(1):rhs_start] + new_rhs + tail
        return None
    nums = list(NUMBER_RE.finditer(step))
    if not nums:
        return None
    last = nums[-1]
    return step[:last.start()] + format_number(_shift(float(last.group(0).replace(",", "")), rng)) + step[last.end():]


def _evaluable(expr: str) -> bool:
    try:
        eval_arithmetic(expr)
    except ValueError:
        return False
    return bool(NUMBER_RE.search(expr))


def appended_mistake(prefix: str, rng: random.Random) -> str:
    """The "adding mistake" baseline: the correct prefix, then one extra step that states a wrong
    running result (the prefix's last number shifted), as a plain claim without arithmetic."""
    nums = list(NUMBER_RE.finditer(prefix))
    base = float(nums[-1].group(0).replace(",", "")) if nums else float(rng.randint(2, 9))
    wrong = format_number(_shift(base, rng))
    sep = "" if not prefix.strip() else ("" if prefix.endswith("\n\n") else "\n\n")
    return f"{prefix}{sep}So far, this gives {wrong}.\n\n"
