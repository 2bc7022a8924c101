"""Parsing helpers for small, unreliable models: bounded retries and a recorded fallback.

Each ``parse_*`` function reads one text and returns the value or ``None``. Each ``ask_*``
function prompts a :class:`~recwise.llm.Generator`, parses, and on failure asks again up to
``max_attempts`` times in all, adding a reminder of the expected format and sampling
(temperature ``retry_temperature``, seed ``params.seed + attempt``) so that a retry can give a
different text than the cached greedy one. When no attempt parses, the result carries the
fallback value with ``fallback_used=True`` and every raw text, so callers can count how often
the model did not comply. There is no unbounded loop anywhere.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from recwise.errors import ConfigError
from recwise.llm._generator import GenerationParams, Generator, Prompt, normalise_prompt

__all__ = [
    "LATLON_REMINDER",
    "ParseResult",
    "Reasoning",
    "ask",
    "ask_choice",
    "ask_json",
    "ask_latlon",
    "ask_number",
    "ask_reasoning",
    "parse_choice",
    "parse_json",
    "parse_latlon",
    "parse_number",
    "parse_reasoning",
    "validate_schema",
    "with_reminder",
]

T = TypeVar("T")


@dataclass(frozen=True)
class ParseResult(Generic[T]):
    """What an ``ask_*`` call got.

    Parameters
    ----------
    ok : bool
        An attempt parsed.
    value : T or None
        The parsed value, or the fallback when ``ok`` is False.
    attempts : int
        Model calls made (1 .. max_attempts).
    fallback_used : bool
        ``value`` is the fallback, not the model's answer.
    raw : tuple of str
        The model's text at each attempt.
    error : str or None
        Why the last attempt did not parse.
    """

    ok: bool
    value: T | None
    attempts: int
    fallback_used: bool
    raw: tuple[str, ...]
    error: str | None = None


# ---------------------------------------------------------------- text parsers


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


_ANSWER_CUE = re.compile(r"(?:final\s+answer|answer|choice|pick|select(?:ed|ion)?)\s*(?:is|:|=|-)?\s*", re.I)


def parse_choice(text: str, candidates: Sequence[str]) -> str | None:
    """The candidate that ``text`` names, or None.

    Rules, in order: the whole text is a candidate (ignoring case, punctuation, spaces); the text
    is the 1-based number of a candidate (``"3"``, ``"(3)"``, ``"#3"``; only when no candidate is
    itself a number); after an answer cue (``answer is``, ``Answer:``), the candidate that comes
    first; else the candidate mentioned first. A mention is a whole-word match; a candidate inside
    a longer mentioned candidate (``York`` in ``New York``) does not count.
    """
    if not candidates:
        raise ConfigError("candidates is empty; pass at least one candidate")
    normed = [_norm(c) for c in candidates]
    t = _norm(text)
    for c, n in zip(candidates, normed):
        if n and t == n:
            return c
    numeric = any(re.fullmatch(r"\d+", n) for n in normed)
    bare = re.sub(r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|choice|option)\s*(?:is|:)?\s*", "", text, flags=re.I)
    m = re.fullmatch(r"\s*[(#\[]?\s*(\d+)\s*[)\].:]?\s*", bare)
    if m and not numeric and 1 <= int(m.group(1)) <= len(candidates):
        return candidates[int(m.group(1)) - 1]
    spans: list[tuple[int, int, int]] = []  # (start, end, candidate index)
    for i, n in enumerate(normed):
        if not n:
            continue
        for mm in re.finditer(rf"(?<!\w){re.escape(n)}(?!\w)", t):
            spans.append((mm.start(), mm.end(), i))
    spans = [s for s in spans
             if not any(o[0] <= s[0] and s[1] <= o[1] and (o[1] - o[0]) > (s[1] - s[0]) for o in spans)]
    if not spans:
        return None
    cue = None
    for mm in _ANSWER_CUE.finditer(t):
        cue = mm.end()
    if cue is not None:
        after = [s for s in spans if s[0] >= cue]
        if after:
            return candidates[min(after)[2]]
    return candidates[min(spans)[2]]


def _json_candidates(text: str) -> list[str]:
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    out = [f.strip() for f in fenced]
    for opener, closer in (("{", "}"), ("[", "]")):
        start = text.find(opener)
        while start != -1:
            depth, in_str, esc = 0, False, False
            for j in range(start, len(text)):
                ch = text[j]
                if in_str:
                    if esc:
                        esc = False
                    elif ch == "\\":
                        esc = True
                    elif ch == '"':
                        in_str = False
                elif ch == '"':
                    in_str = True
                elif ch == opener:
                    depth += 1
                elif ch == closer:
                    depth -= 1
                    if depth == 0:
                        out.append(text[start : j + 1])
                        break
            start = text.find(opener, start + 1)
    return out


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate_schema(value: Any, schema: Mapping[str, Any], where: str = "$") -> str | None:
    """Check ``value`` against a JSON-Schema subset; return the first problem or None.

    Supported keywords: ``type`` (one or a list), ``enum``, ``properties``, ``required``,
    ``additionalProperties: false``, ``items``, ``minItems``, ``maxItems``, ``minimum``,
    ``maximum``, ``minLength``. Other keywords raise ConfigError (they would silently pass).
    """
    known = {"type", "enum", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
             "minimum", "maximum", "minLength", "description", "title"}
    unknown = set(schema) - known
    if unknown:
        raise ConfigError(f"schema keyword(s) {sorted(unknown)} not supported; supported: {sorted(known)}")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES[n](value) for n in names):
            return f"{where}: expected {'/'.join(names)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {value!r} not one of {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return f"{where}: missing required key {key!r}"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(props)
            if extra:
                return f"{where}: unexpected key(s) {sorted(extra)}"
        for key, sub in props.items():
            if key in value:
                problem = validate_schema(value[key], sub, f"{where}.{key}")
                if problem:
                    return problem
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", math.inf):
            return (f"{where}: {len(value)} items, "
                    f"outside [{schema.get('minItems', 0)}, {schema.get('maxItems', 'inf')}]")
        if "items" in schema:
            for i, item in enumerate(value):
                problem = validate_schema(item, schema["items"], f"{where}[{i}]")
                if problem:
                    return problem
    if (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf))):
        return f"{where}: {value} outside [{schema.get('minimum', '-inf')}, {schema.get('maximum', 'inf')}]"
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        return f"{where}: shorter than {schema['minLength']}"
    return None


def parse_json(text: str, schema: Mapping[str, Any] | None = None) -> Any | None:
    """The first JSON value in ``text`` (fenced block or balanced braces) that fits ``schema``, or None."""
    for cand in _json_candidates(text):
        try:
            value = json.loads(cand)
        except ValueError:
            continue
        if schema is None or validate_schema(value, schema) is None:
            return value
    return None


_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"


def _to_float(s: str) -> float:
    return float(s.replace(",", ""))


def parse_number(text: str) -> float | None:
    """The answer number in ``text``: after ``####``, ``answer is``/``Answer:``, else the last number."""
    for cue in (r"####\s*", r"(?:final\s+)?answer\s*(?:is|:|=)?\s*\$?", r"=\s*\$?"):
        hits = re.findall(rf"{cue}({_NUM})", text, flags=re.I)
        if hits:
            return _to_float(hits[-1])
    nums = re.findall(_NUM, text)
    return _to_float(nums[-1]) if nums else None


_COORD = r"([-+]?\d{1,3}(?:\.\d+)?)\s*°?\s*([NSEWnsew])?"


def parse_latlon(text: str) -> tuple[float, float] | None:
    """A (latitude, longitude) pair in degrees, or None.

    Reads JSON-ish ``"lat": x, "lon": y`` (also latitude/longitude/lng), ``(x, y)`` and
    ``x° N, y° W`` forms. Hemisphere letters set the sign; values out of range are rejected.
    """
    named_lat = re.search(r"lat(?:itude)?\W{0,4}?([-+]?\d{1,3}(?:\.\d+)?)", text, re.I)
    named_lon = re.search(r"(?:lon(?:gitude)?|lng)\W{0,4}?([-+]?\d{1,3}(?:\.\d+)?)", text, re.I)
    pairs: list[tuple[float, float]] = []
    if named_lat and named_lon:
        pairs.append((float(named_lat.group(1)), float(named_lon.group(1))))
    for m in re.finditer(rf"{_COORD}\s*[,;/ ]\s*{_COORD}", text):
        lat, lat_h, lon, lon_h = float(m.group(1)), m.group(2), float(m.group(3)), m.group(4)
        if lat_h and lat_h.upper() in "EW" and lon_h and lon_h.upper() in "NS":
            lat, lat_h, lon, lon_h = lon, lon_h, lat, lat_h
        if lat_h and lat_h.upper() == "S":
            lat = -abs(lat)
        if lon_h and lon_h.upper() == "W":
            lon = -abs(lon)
        pairs.append((lat, lon))
    for lat, lon in pairs:
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            return (lat, lon)
    return None


@dataclass(frozen=True)
class Reasoning:
    """A reasoning trace split into steps and a final answer (None when none was stated)."""

    steps: tuple[str, ...]
    answer: str | None


_FINAL = re.compile(r"(?:####|(?:the\s+)?(?:final\s+)?answer\s*(?:is|:))\s*:?\s*(.+)", re.I)


def parse_reasoning(text: str) -> Reasoning:
    """Split ``text`` into steps (``Step n:``, numbered lines, or lines/sentences) and the final answer."""
    answer = None
    body = text
    m = None
    for m in _FINAL.finditer(text):  # noqa: B007 - keeps the last match
        pass
    if m is not None:
        answer = m.group(1).strip().splitlines()[0].strip().rstrip(".").strip() or None
        line_start = text.rfind("\n", 0, m.start()) + 1
        lead = text[line_start : m.start()].rstrip()
        # A lead-in on the answer's line ("So the", "Therefore,") is not a step; a sentence is.
        body = text[: m.start()] if lead.endswith((".", "!", "?")) else text[:line_start]
    parts = re.split(r"(?im)^\s*(?:step\s*\d+\s*[:.)-]|\d+\s*[.)]|[-*•])\s*", body)
    steps = [" ".join(p.split()) for p in parts if p.strip()]
    if len(steps) <= 1 and body.strip():
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        steps = lines if len(lines) > 1 else [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if s.strip()]
    return Reasoning(tuple(steps), answer)


# ---------------------------------------------------------------- ask with retries


def with_reminder(prompt: Prompt, reminder: str) -> Prompt:
    """``prompt`` with ``reminder`` added to its last user turn (a chat) or appended (plain text): the retry prompt."""
    p = normalise_prompt(prompt)
    if isinstance(p, str):
        return f"{p}\n{reminder}\n"
    msgs = list(p)
    last = msgs[-1]
    if last["role"] == "user" and isinstance(last["content"], str):
        msgs[-1] = {"role": "user", "content": f"{last['content']}\n\n{reminder}"}
    elif last["role"] == "user":  # content parts (e.g. an image): the reminder is one more text part
        msgs[-1] = {"role": "user", "content": [*last["content"], {"type": "text", "text": reminder}]}
    else:
        msgs.append({"role": "user", "content": reminder})
    return msgs


def ask(
    generator: Generator,
    prompt: Prompt,
    parser: Callable[[str], T | None],
    *,
    reminder: str,
    fallback: T | None = None,
    params: GenerationParams | None = None,
    max_attempts: int = 3,
    retry_temperature: float = 0.7,
) -> ParseResult[T]:
    """Generate, parse, and retry at most ``max_attempts - 1`` times; then fall back.

    Parameters
    ----------
    generator : Generator
    prompt : Prompt
    parser : callable
        Text to value, or None when the text does not parse.
    reminder : str
        Appended to the prompt on retries (say what format is expected).
    fallback : optional
        Value returned when no attempt parses (recorded as ``fallback_used``).
    params : GenerationParams, optional
        Parameters of the first attempt (default greedy, 64 tokens).
    max_attempts : int, default 3
    retry_temperature : float, default 0.7
        Retries sample at ``max(params.temperature, retry_temperature)`` with seed ``params.seed + k``.
    """
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 10:
        raise ConfigError(f"option 'max_attempts' must be an int in [1, 10]; got {max_attempts!r}")
    params = params or GenerationParams()
    raw: list[str] = []
    for attempt in range(max_attempts):
        if attempt == 0:
            text = generator.complete(prompt, params)
        else:
            retry = replace(params, temperature=max(params.temperature, retry_temperature),
                            seed=params.seed + attempt, n=1)
            text = generator.complete(with_reminder(prompt, reminder), retry)
        raw.append(text)
        value = parser(text)
        if value is not None:
            return ParseResult(True, value, attempt + 1, False, tuple(raw))
    return ParseResult(False, fallback, max_attempts, True, tuple(raw),
                       f"no parsable answer in {max_attempts} attempts")


def ask_choice(
    generator: Generator,
    prompt: Prompt,
    candidates: Sequence[str],
    *,
    fallback: str | None = None,
    **kwargs: Any,
) -> ParseResult[str]:
    """Ask for one of ``candidates``; fallback defaults to the first candidate."""
    if not candidates:
        raise ConfigError("candidates is empty; pass at least one candidate")
    listing = "; ".join(candidates)
    return ask(
        generator, prompt, lambda t: parse_choice(t, candidates),
        reminder=f"Answer with exactly one of: {listing}.",
        fallback=candidates[0] if fallback is None else fallback, **kwargs,
    )


def ask_json(
    generator: Generator,
    prompt: Prompt,
    schema: Mapping[str, Any] | None = None,
    *,
    fallback: Any = None,
    **kwargs: Any,
) -> ParseResult[Any]:
    """Ask for a JSON value that fits ``schema`` (see :func:`validate_schema`)."""
    if schema is not None:
        validate_schema(None, schema)  # unsupported keywords fail now, not silently later
    shape = f" matching this JSON schema: {json.dumps(schema)}" if schema else ""
    return ask(
        generator, prompt, lambda t: parse_json(t, schema),
        reminder=f"Reply with only a JSON value{shape}.", fallback=fallback, **kwargs,
    )


def ask_number(generator: Generator, prompt: Prompt, *, fallback: float | None = None,
               **kwargs: Any) -> ParseResult[float]:
    """Ask for a number (see :func:`parse_number`)."""
    return ask(generator, prompt, parse_number, reminder="End with 'The answer is: <number>'.", fallback=fallback,
               **kwargs)


LATLON_REMINDER = 'Reply with only {"latitude": <degrees>, "longitude": <degrees>}.'
"""What :func:`ask_latlon` adds to the prompt on a retry (with :func:`with_reminder`)."""


def ask_latlon(
    generator: Generator, prompt: Prompt, *, fallback: tuple[float, float] | None = None, **kwargs: Any
) -> ParseResult[tuple[float, float]]:
    """Ask for a latitude/longitude pair (see :func:`parse_latlon`)."""
    return ask(
        generator, prompt, parse_latlon,
        reminder=LATLON_REMINDER, fallback=fallback, **kwargs,
    )


def ask_reasoning(generator: Generator, prompt: Prompt, **kwargs: Any) -> ParseResult[Reasoning]:
    """Ask for step-by-step reasoning ending in a final answer; parses when an answer is stated."""

    def parser(text: str) -> Reasoning | None:
        r = parse_reasoning(text)
        return r if r.answer is not None else None

    result = ask(generator, prompt, parser, reminder="Think step by step, then end with 'The answer is: <answer>'.",
                 **kwargs)
    if result.fallback_used and result.value is None:  # keep the steps of the last attempt
        result = replace(result, value=parse_reasoning(result.raw[-1]))
    return result
