"""A deterministic fake LLM backend for the attack tests: it answers arithmetic word problems of
the generated kind by computing the chain itself, and follows injected steps when they are there."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recwise.data.reasoning import eval_arithmetic
from recwise.llm import Completion, Generator, LLMCache
from recwise.tasks.attack.prompts import INSTRUCTION

_OPS = {"buys": "+", "finds": "+", "gets": "+", "gives": "-", "loses": "-", "uses": "-", "ends up with": "*"}


def solve_story(question: str) -> tuple[list[str], int] | None:
    """Steps and answer of a generated arithmetic story (None for anything else)."""
    m = re.match(r"\w+ has (\d+) \w+\.", question)
    if not m:
        return None
    value = int(m.group(1))
    steps = []
    for verb, num in re.findall(r"(buys|finds|gets|gives|loses|uses|ends up with) (\d+)", question):
        op = _OPS[verb]
        new = int(eval_arithmetic(f"{value}{op}{num}"))
        steps.append(f"{value} {op} {num} = {new}.")
        value = new
    return steps, value


@dataclass
class FakeBackend:
    """``name``, ``fingerprint`` and ``complete(rows)``: the Backend protocol.

    - a solving prompt: numbered steps and ``The answer is: N.``; when the prompt ends with injected
      steps, the last number injected is taken as the running value (a model that trusts its context);
    - SEED-P's rewrite turn: ``[Question]`` and ``rewrite`` (default: the same question, so the
      fallback must step in);
    - a detector prompt: ``Yes`` when the solution holds ``flag_word``, else ``No``;
    - a review turn: recomputes from the question (a perfect self-review) when ``review_fixes``.
    """

    name: str = "fake"
    fingerprint: str = "fake-v1"
    rewrite: str | None = None
    flag_word: str = "So far"
    review_fixes: bool = True
    empty: bool = False
    wrong: bool = False  # every solution ends "The answer is: 999."
    seen: list[Any] = field(default_factory=list)

    def complete(self, rows: Sequence[Any]) -> list[Completion]:
        out = []
        for row in rows:
            self.seen.append(row.prompt)
            out.append(Completion(self._answer(row.prompt), completion_tokens=7))
        return out

    def _answer(self, prompt: Any) -> str:
        if self.empty:
            return ""
        user = [m["content"] for m in prompt if m["role"] == "user"]
        last = user[-1]
        if "tampered" in last:
            return "Yes" if self.flag_word in last else "No"
        if "Create a new question" in last:
            return "[Question] " + (self.rewrite or user[0].removeprefix(INSTRUCTION).strip())
        if last.startswith("Review") and self.review_fixes:
            return self._solve(user[0], trust_injection=False)
        return self._solve(last, trust_injection=True)

    def _solve(self, text: str, *, trust_injection: bool) -> str:
        if self.wrong:
            return "1. I guess.\n\nThe answer is: 999."
        q = text.removeprefix(INSTRUCTION).split("[Your Problem]")[-1].split("[Question] \n\n")[-1]
        story = solve_story(q.split("[Solution]")[0].split("\n\nThe answer is:")[0].strip())
        if story is None:
            return "I do not know."
        steps, value = story
        injected = text.split("[Solution]")[-1] if "[Solution]" in text else ""
        nums = re.findall(r"\d+", injected)
        if trust_injection and nums:
            return f"Continuing from there.\n\nThe answer is: {nums[-1]}."
        pre = re.search(r"The answer is: (\d+)", text.split("[Solution]")[0]) if trust_injection else None
        if pre:
            return f"As given.\n\nThe answer is: {pre.group(1)}."
        body = "\n\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
        return f"{body}\n\nThe answer is: {value}."


def fake_generator(tmp_path: Any, **kw: Any) -> Generator:
    return Generator(FakeBackend(**kw), LLMCache(str(tmp_path / "cache.sqlite")))
