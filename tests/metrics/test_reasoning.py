"""Answer extraction and the attack metrics as the released Evaluation.py defines them."""

from __future__ import annotations

import math

import pytest

from recwise.metrics.reasoning import arithmetic_consistent, attack_metrics, extract_answer, judge


@pytest.mark.parametrize(("output", "gold", "kind", "expected"), [
    ("1. 3 + 4 = 7\n\nThe answer is: 7.", "7", "number", True),
    ("The answer is: $1,234.00 dollars", "1234", "number", True),  # commas, units, .00
    ("The answer is: 12 apples, not 13", "12", "number", False),  # the last number counts
    ("the answer is: 18", "18", "number", True),
    ("The answer is 18.", "18", "number", None),  # no colon: unparsable as released
    ("The answer is:", "18", "number", None),
    ("The answer is: 18.0", "18", "number", True),  # values compared (the released code compares strings)
    ("The answer choice is: B: nausea", "B", "choice", True),
    ("The answer choice is: D: Death", "D", "choice", False),  # two capitals A-F: wrong, as released
    ("The answer choice is: none", "B", "choice", False),
    ("The answer choice is: d) 40 min", "d", "mathqa", True),
    ("The answer choice is: 40", "d", "mathqa", None),
    ("The answer is: $\\frac{1}{2}$.", "\\frac{1}{2}", "math", True),
    ("The answer is: 0.5000001", "0.5", "math", True),
    ("no cue at all 7", "7", "number", None),
    (None, "7", "number", None),
])
def test_judge_table(output: str | None, gold: str, kind: str, expected: bool | None) -> None:
    assert judge(output, gold, kind) is expected


def test_lenient_extraction_takes_a_cue_without_colon() -> None:
    assert judge("The answer is 13.", "13", "number", lenient=True) is True
    assert extract_answer("So the answer is 4, and the final answer is 5", "number", lenient=True) == "5"


def test_attack_metrics_follow_the_released_definitions() -> None:
    clean = [True, True, True, False, None, True]
    attacked = [True, False, None, True, True, True]
    m = attack_metrics(clean, attacked)
    assert m.clean_accuracy == pytest.approx(4 / 6)
    assert m.attacked_accuracy == pytest.approx(4 / 6)  # questions 4 and 5 turned right under attack
    assert m.asr == pytest.approx(2 / 4)  # of the 4 clean-correct, one wrong and one unparsable
    assert m.relative_drop == pytest.approx(0.0)
    assert (m.clean_unparsable, m.attacked_unparsable, m.clean_correct) == (1, 1, 4)
    none_right = attack_metrics([False, None], [False, False])
    assert math.isnan(none_right.asr) and math.isnan(none_right.relative_drop)
    with pytest.raises(ValueError, match="2 clean judgements but 1"):
        attack_metrics([True, True], [True])


def test_arithmetic_consistency() -> None:
    assert arithmetic_consistent("So 16 - 3 - 4 = 9 eggs, and 9 * 2 = $18.") is True
    assert arithmetic_consistent("He has 20 x 3 = 60 and then 60 + 5 = 66.") is False
    assert arithmetic_consistent("Each gets 10 / 3 = 3.33 pies.") is True  # rounding as shown
    assert arithmetic_consistent("Each gets 10 / 3 = 4 pies.") is False
    assert arithmetic_consistent("No arithmetic here.") is None
