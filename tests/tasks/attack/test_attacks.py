"""The injections: released step counting, SEED-S's consistent edit, the baselines' wrong texts."""

from __future__ import annotations

import random

import pytest

from recwise.data.reasoning import Problem
from recwise.metrics.reasoning import arithmetic_consistent
from recwise.tasks.attack.attacks import (
    alter_step,
    appended_mistake,
    kept_steps,
    modified_question,
    numbered,
    preemptive_of,
    wrong_answer,
)

SOLUTION = "1. a = 2\n\n2. b = 3\n\n3. c = 4\n\n4. d = 5\n\nThe answer is: 5."  # T = 5 with the answer step


@pytest.mark.parametrize(("sigma", "floor_n", "ceil_n"), [(0.2, 1, 1), (0.4, 2, 2), (0.6, 3, 3), (0.5, 2, 3),
                                                           (0.8, 4, 4), (1.0, 4, 4)])
def test_kept_steps_counts_as_released(sigma: float, floor_n: int, ceil_n: int) -> None:
    # released: steps[:int(max(sigma*T - 1, 0)) + 1], then the answer sentence cut away
    assert kept_steps(SOLUTION, sigma).count("\n\n") == floor_n
    assert kept_steps(SOLUTION, sigma, "ceil").count("\n\n") == ceil_n
    assert "The answer is" not in kept_steps(SOLUTION, 1.0)


def test_alter_step_changes_a_number_and_stays_consistent() -> None:
    step = "After adding 7, Ava has 9 + 7 = 16 apples, so 16 in all."
    for seed in range(20):
        new = alter_step(step, random.Random(seed))
        assert new is not None and new != step
        assert arithmetic_consistent(new) is True  # the result was recomputed
        assert "16" not in new.split("=")[1]  # later mentions of the old result follow
    assert alter_step("She has twelve.", random.Random(0)) is None
    plain = alter_step("She has 12 apples.", random.Random(0))
    assert plain is not None and "12" not in plain


def test_baselines_and_helpers() -> None:
    p = Problem("x", "q", "21")
    answers = {wrong_answer(p, random.Random(s)) for s in range(30)}
    assert "21" not in answers and all(float(a) >= 0 for a in answers if a)
    assert wrong_answer(Problem("c", "q", "B", "choice"), random.Random(0)) in set("ACDE")
    assert wrong_answer(Problem("m", "q", "\\frac{1}{2}", "math"), random.Random(0)) is None
    mistake = appended_mistake("1. 9 + 7 = 16.\n\n", random.Random(0))
    assert mistake.startswith("1. 9 + 7 = 16.\n\nSo far, this gives ") and "16." not in mistake.split("gives")[1]
    assert numbered(["a", "b"], "3") == "1. a\n\n2. b\n\nThe answer is: 3."
    assert preemptive_of("x\n\nThe answer is: 29.\nmore") == "29."
    csqa = Problem("c", "Where? Answer Choices: (A) x (B) y", "A", "choice")
    assert modified_question("[Target] B [Question] When?", csqa) == "When? Answer Choices: (A) x (B) y"
