"""Question-answering metrics: exact match and token F1 with SQuAD's normalisation, choice accuracy, answer recall.

Written here rather than loaded: the usual metric packages fetch their scripts from a hub at run
time. The normalisation is the SQuAD v1.1 evaluation script's (and FlashRAG's, which RADIO used):
lower-case, drop punctuation, drop the articles *a*, *an*, *the*, collapse white space. A
prediction is scored against every gold answer and keeps the best score.

Examples
--------
>>> exact_match("The Sol.", ["sol", "PEN"])
1.0
>>> round(token_f1("the Peruvian sol", ["Sol"]), 3)
0.667
>>> answer_in_texts(["People in Peru pay with the Sol."], ["sol"])
True
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = ["answer_in_texts", "choice_accuracy", "exact_match", "normalize_answer", "parse_choice_letter",
           "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def _f1(pred: list[str], gold: list[str]) -> float:
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if not pred or not gold:
        return float(pred == gold)
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """Best token-overlap F1 between the normalised prediction and a normalised gold answer."""
    pred = normalize_answer(prediction).split()
    return max((_f1(pred, normalize_answer(a).split()) for a in answers), default=0.0)


def answer_in_texts(texts: Sequence[str], answers: Sequence[str]) -> bool:
    """Whether a normalised gold answer occurs, as whole words, in a normalised text (answer recall's hit)."""
    norm = [f" {normalize_answer(t)} " for t in texts]
    golds = [normalize_answer(a) for a in answers]
    return any(g and f" {g} " in t for g in golds for t in norm)


def parse_choice_letter(text: str, letters: Sequence[str] = ("A", "B", "C", "D")) -> str | None:
    """The option letter a generated answer names: a lone letter, ``(B)``, ``B.``, ``Answer: B``; None if none."""
    for m in re.finditer(r"(?<![\w'])\(?([A-Z])\)?(?=[\s.:)]|$)", text.strip()):
        if m.group(1) in letters:
            return m.group(1)
    return None


def choice_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Multiple choice: 1.0 when the letter the prediction names is a gold letter."""
    return float(parse_choice_letter(prediction) in set(answers))
