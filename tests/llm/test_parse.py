"""Parsing helpers: messy text in, the right value out; bounded retries and a recorded fallback."""

from __future__ import annotations

from typing import Any

import pytest

from recwise.errors import ConfigError
from recwise.llm import GenerationParams, Generator
from recwise.llm._parse import (
    ask_choice,
    ask_json,
    ask_latlon,
    ask_number,
    ask_reasoning,
    parse_choice,
    parse_json,
    parse_latlon,
    parse_number,
    parse_reasoning,
)

from .conftest import FakeBackend

CITIES = ["New York", "York", "Boston"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("boston", "Boston"),
        ("  Boston.  ", "Boston"),
        ("I think it is NEW YORK!", "New York"),  # 'York' inside 'New York' does not count
        ("Not Boston, not New York. The answer is: York.", "York"),  # the answer cue wins
        ("Answer: (2)", "York"),
        ("2", "York"),  # a bare number picks by position
        ("York or Boston, hard to say", "York"),  # else the first mention
        ("Paris", None),
        ("Yorkshire pudding", None),  # whole words only
    ],
)
def test_parse_choice(text: str, expected: str | None) -> None:
    assert parse_choice(text, CITIES) == expected


def test_parse_choice_numeric_candidates_are_not_positions() -> None:
    assert parse_choice("3", ["1", "3", "5"]) == "3"


SCHEMA = {
    "type": "object",
    "required": ["name", "score"],
    "properties": {"name": {"type": "string"}, "score": {"type": "number", "minimum": 0, "maximum": 1}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Sure! {"name": "a", "score": 0.5} hope this helps', {"name": "a", "score": 0.5}),
        ('```json\n{"name": "b", "score": 1}\n```', {"name": "b", "score": 1}),
        ('{"name": "x", "score": 3} then {"name": "y", "score": 0.1}', {"name": "y", "score": 0.1}),
        ('{"name": "a"}', None),  # missing key
        ('{"name": "a", "score": "high"}', None),  # wrong type
        ("{'name': 'a', 'score': 0.5}", None),  # not JSON
        ('{"name": "a}", "score": 0.2', None),  # unbalanced
    ],
)
def test_parse_json_validates_schema(text: str, expected: object) -> None:
    assert parse_json(text, SCHEMA) == expected


def test_unsupported_schema_keyword_is_an_error() -> None:
    with pytest.raises(ConfigError, match="pattern"):
        ask_json(Generator(FakeBackend(), None), "x", {"type": "string", "pattern": "a+"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 apples + 3 apples = 5 apples. The answer is 5.", 5.0),
        ("Total: 1,234.5 dollars #### 1,234.5", 1234.5),
        ("first 3 then 7 then -2.5", -2.5),
        ("x = 12 so y = 24", 24.0),
        ("no digits", None),
    ],
)
def test_parse_number(text: str, expected: float | None) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It is around 48.8566° N, 2.3522° E.", (48.8566, 2.3522)),
        ('{"latitude": -33.87, "longitude": 151.21}', (-33.87, 151.21)),
        ("coords (40.71, -74.01)", (40.71, -74.01)),
        ("34.05 S 18.42 W", (-34.05, -18.42)),
        ("lat: 95, lon: 10", None),  # out of range
        ("somewhere in France", None),
    ],
)
def test_parse_latlon(text: str, expected: tuple[float, float] | None) -> None:
    assert parse_latlon(text) == expected


def test_parse_reasoning_steps_and_answer() -> None:
    r = parse_reasoning("Step 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 14.\nSo the answer is: 14.")
    assert r.steps == ("3 + 4 = 7.", "7 * 2 = 14.")
    assert r.answer == "14"
    r = parse_reasoning("We add 3 and 4 to get 7. Doubling gives 14.\n#### 14")
    assert r.steps == ("We add 3 and 4 to get 7.", "Doubling gives 14.") and r.answer == "14"
    assert parse_reasoning("just rambling").answer is None


def test_ask_retries_then_succeeds_with_a_reminder_and_sampling() -> None:
    backend = FakeBackend(replies=["I like big cities", "Probably Boston"])
    result = ask_choice(Generator(backend, None), "Which city?", CITIES, params=GenerationParams(max_tokens=9))
    assert result.ok and result.value == "Boston" and result.attempts == 2 and not result.fallback_used
    assert result.raw == ("I like big cities", "Probably Boston")
    retry = backend.rows[1]
    assert retry.params.temperature > 0 and retry.params.max_tokens == 9
    assert "exactly one of: New York; York; Boston" in str(retry.prompt)


@pytest.mark.parametrize(
    ("ask", "extra", "fallback"),
    [
        (ask_choice, (CITIES,), "New York"),
        (ask_json, (SCHEMA,), None),
        (ask_number, (), None),
        (ask_latlon, (), None),
    ],
)
def test_retries_are_bounded_and_the_fallback_recorded(ask: Any, extra: tuple[Any, ...], fallback: Any) -> None:
    backend = FakeBackend(replies=["nonsense"] * 10)
    result = ask(Generator(backend, None), [{"role": "user", "content": "q"}], *extra, max_attempts=3)
    assert len(backend.rows) == 3 and result.attempts == 3
    assert not result.ok and result.fallback_used and result.value == fallback
    assert result.raw == ("nonsense",) * 3 and result.error


def test_ask_reasoning_falls_back_to_steps_without_answer() -> None:
    backend = FakeBackend(replies=["First 2. Then 4."] * 2)
    result = ask_reasoning(Generator(backend, None), "q", max_attempts=2)
    assert result.fallback_used and result.value is not None
    assert result.value.answer is None and result.value.steps == ("First 2.", "Then 4.")


def test_max_attempts_is_checked() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        ask_number(Generator(FakeBackend(), None), "q", max_attempts=0)
