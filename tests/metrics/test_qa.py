"""SQuAD-style EM / F1, answer recall's whole-word match, and choice letters."""

from __future__ import annotations

import pytest

from recwise.metrics.qa import answer_in_texts, choice_accuracy, exact_match, normalize_answer, token_f1


def test_normalisation_drops_case_punctuation_articles_and_spaces() -> None:
    assert normalize_answer("  The  Peruvian-Sol! ") == "peruviansol"
    assert normalize_answer("An apple a day") == "apple day"


@pytest.mark.parametrize(("pred", "golds", "em", "f1"), [
    ("Lima", ["lima"], 1.0, 1.0),
    ("the city of Lima", ["Lima"], 0.0, 0.5),
    ("Nuevo Sol", ["Sol", "PEN"], 0.0, 2 / 3),
    ("", ["Sol"], 0.0, 0.0),
    ("Quito", ["Lima"], 0.0, 0.0),
])
def test_em_and_f1_take_the_best_gold(pred: str, golds: list[str], em: float, f1: float) -> None:
    assert exact_match(pred, golds) == em
    assert token_f1(pred, golds) == pytest.approx(f1)


def test_answer_recall_matches_whole_words_only() -> None:
    assert answer_in_texts(["They pay with the Sol (PEN)."], ["sol"])
    assert not answer_in_texts(["Solomon Islands"], ["Sol"])
    assert answer_in_texts(["x", "He lives in New York."], ["new york"])


def test_choice_accuracy_reads_the_letter() -> None:
    assert choice_accuracy("The answer is (B).", ["B"]) == 1.0
    assert choice_accuracy("I think C", ["B"]) == 0.0
    assert choice_accuracy("no idea", ["B"]) == 0.0
