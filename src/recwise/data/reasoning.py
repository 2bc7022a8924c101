"""Reasoning problems: readers for GSM8K, MATH, CommonsenseQA and MathQA in their public layouts,
a generator of multi-step arithmetic word problems with known solution chains, step splitting,
and the deterministic "change one number, recompute the chain" rewrite the SEED attacks fall back on.

A :class:`Problem` holds the question, the gold answer, the kind of answer (``number``, ``math``,
``choice`` for CommonsenseQA's A-E, ``mathqa`` for MathQA's a-e), and where the data has one, the
solution chain: the calculator steps (GSM8K's ``<<48/2=24>>`` annotations, the generator's own
operations) and the solution's steps as text. :func:`perturb_problem` changes one number of the
question that feeds the chain, recomputes every calculation and rewrites the question and the
solution, giving a problem that strictly leads to another answer (SEED-P's fallback).

Readers raise a :class:`~recwise.errors.DataError` naming the file and line of a malformed record.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from recwise.errors import ConfigError, DataError

__all__ = ["ARITH_DIFFICULTIES", "ArithConfig", "Calc", "Problem", "READERS", "eval_arithmetic", "format_number",
           "generate_arith", "load_problems", "perturb_problem", "read_csqa", "read_gsm8k", "read_math",
           "read_mathqa", "split_steps", "NUMBER_RE", "SOURCES"]

AnswerKind = Literal["number", "math", "choice", "mathqa"]
# a number as written in text: 1,234.5 or 12 or 0.75 (no sign: a leading "-" is usually an operator)
NUMBER_RE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\d])")


@dataclass(frozen=True)
class Calc:
    """One calculator step: an arithmetic expression over numbers and its result."""

    expr: str
    result: float


@dataclass(frozen=True)
class Problem:
    """One reasoning problem.

    ``answer`` is the gold answer as the metric reads it (a number without commas, a boxed LaTeX
    answer, a choice letter). ``chain`` and ``solution`` are empty where the data has none.
    """

    id: str
    question: str
    answer: str
    kind: AnswerKind = "number"
    chain: tuple[Calc, ...] = ()
    solution: tuple[str, ...] = ()  # the gold solution's steps, as text, final answer sentence excluded
    source: str = ""  # "file:line" or "arith(seed, index)"


# ---------------------------------------------------------------------------------------------
# numbers and arithmetic


def format_number(value: float, *, commas: bool = False) -> str:
    """``18.0`` -> ``"18"``, ``2.5`` -> ``"2.5"``; ``commas`` writes ``130,000``."""
    if math.isfinite(value) and abs(value - round(value)) < 1e-9:
        return f"{round(value):,}" if commas else str(round(value))
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    if commas:
        whole, _, frac = text.partition(".")
        text = f"{int(whole):,}" + (f".{frac}" if frac else "")
    return text


def _to_float(token: str) -> float:
    return float(token.replace(",", ""))


_OPS: dict[type, Callable[[Any, Any], Any]] = {ast.Add: operator.add, ast.Sub: operator.sub,
                                               ast.Mult: operator.mul, ast.Div: operator.truediv,
                                               ast.Pow: operator.pow, ast.Mod: operator.mod}


def eval_arithmetic(expr: str) -> float:
    """Evaluate ``+ - * / ** %`` and parentheses over numbers (``x`` and ``×`` read as ``*``); a
    ValueError for anything else (names, calls) or a division by zero. Never ``eval``."""
    text = expr.replace(",", "").replace("×", "*").replace("x", "*").replace("÷", "/").replace("^", "**")
    text = text.replace("$", "").replace("%", "/100")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expr!r}") from None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 12:
                raise ValueError(f"exponent too large in {expr!r}")
            try:
                return float(_OPS[type(node.op)](left, right))
            except ZeroDivisionError:
                raise ValueError(f"division by zero in {expr!r}") from None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        raise ValueError(f"not an arithmetic expression: {expr!r}")

    return ev(tree.body)


def split_steps(text: str) -> list[str]:
    """The steps of a solution: paragraphs separated by blank lines (the released CoT format),
    stripped, empty ones dropped."""
    return [s.strip() for s in re.split(r"\n\s*\n", text) if s.strip()]


# ---------------------------------------------------------------------------------------------
# readers


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass the dataset file with --data-dir")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                "fix or remove the line") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object; got {type(rec).__name__}")
            yield lineno, rec


def _field(rec: dict[str, Any], key: str, where: str) -> str:
    value = rec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: missing or empty field '{key}' (fields: {sorted(rec)})")
    return value


_ANNOTATION = re.compile(r"<<([^=<>]*)=([^<>]*)>>")


def gsm8k_chain(solution: str) -> tuple[Calc, ...]:
    """The ``<<expr=result>>`` calculator annotations of a GSM8K solution (unparsable ones skipped)."""
    out = []
    for expr, result in _ANNOTATION.findall(solution):
        try:
            out.append(Calc(expr.strip(), float(result.replace(",", "").strip())))
        except ValueError:
            continue
    return tuple(out)


def read_gsm8k(path: str | Path) -> list[Problem]:
    """GSM8K's ``test.jsonl`` (openai/grade-school-math): ``question`` and ``answer`` whose last
    line is ``#### <number>``; the annotations become the chain, the other lines the solution."""
    path = Path(path)
    out = []
    for lineno, rec in _jsonl(path):
        where = f"{path}:{lineno}"
        question, answer = _field(rec, "question", where), _field(rec, "answer", where)
        body, sep, gold = answer.rpartition("####")
        gold = gold.strip().replace(",", "")
        if not sep or not re.fullmatch(r"-?\d+(\.\d+)?", gold):
            raise DataError(f"{where}: no parsable gold answer (expected a last line '#### <number>'; "
                            f"got {answer[-40:]!r})")
        steps = tuple(_ANNOTATION.sub("", ln).strip() for ln in body.strip().splitlines() if ln.strip())
        out.append(Problem(f"gsm8k-{lineno}", question.strip(), gold, "number", gsm8k_chain(body), steps, where))
    return out


def boxed_answer(solution: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (braces balanced), as MATH marks its answers."""
    i = solution.rfind("\\boxed")
    if i < 0:
        return None
    rest = solution[i + len("\\boxed"):]
    if not rest.startswith("{"):
        return rest.split("$")[0].strip() or None
    depth = 0
    out: list[str] = []
    for ch in rest:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return "".join(out).strip()
        out.append(ch)
    return None


def read_math(root: str | Path, *, subjects: tuple[str, ...] = ("algebra",),
              levels: tuple[int, ...] = (1, 2, 3)) -> list[Problem]:
    """MATH (hendrycks/math) ``<root>/test/<subject>/*.json`` (``problem``, ``level``, ``solution``);
    SEED used algebra levels 1-3. ``root`` may also be the ``test`` folder itself."""
    root = Path(root)
    base = root / "test" if (root / "test").is_dir() else root
    files = sorted(p for s in subjects for p in (base / s).glob("*.json"))
    if not files:
        raise DataError(f"{base}: no MATH files under {', '.join(s + '/' for s in subjects)}; expected "
                        "<root>/test/<subject>/<id>.json from the MATH archive")
    wanted = {f"Level {lv}" for lv in levels}
    out: list[Problem] = []
    for f in files:
        try:
            rec = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{f}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if rec.get("level") not in wanted:
            continue
        problem, solution = _field(rec, "problem", str(f)), _field(rec, "solution", str(f))
        gold = boxed_answer(solution)
        if not gold:
            raise DataError(f"{f}: no parsable gold answer (no \\boxed{{...}} in the solution)")
        out.append(Problem(f"math-{f.parent.name}-{f.stem}", problem, gold, "math", source=str(f)))
    return out


def read_csqa(path: str | Path) -> list[Problem]:
    """CommonsenseQA ``dev_rand_split.jsonl``: the question reads ``<stem> Answer Choices: (A) ...
    (B) ...`` as in the released code; the gold is ``answerKey``."""
    path = Path(path)
    out: list[Problem] = []
    for lineno, rec in _jsonl(path):
        where = f"{path}:{lineno}"
        q = rec.get("question")
        if not isinstance(q, dict) or not isinstance(q.get("choices"), list) or "stem" not in q:
            raise DataError(f"{where}: expected 'question' with 'stem' and 'choices'")
        key = rec.get("answerKey")
        labels = [c.get("label") for c in q["choices"] if isinstance(c, dict)]
        if key not in labels:
            raise DataError(f"{where}: no parsable gold answer (answerKey {key!r} not among {labels})")
        choices = " ".join(f"({c['label']}) {c['text']}" for c in q["choices"])
        out.append(Problem(rec.get("id", f"csqa-{lineno}"), f"{q['stem'].strip()} Answer Choices: {choices}",
                           str(key), "choice", source=where))
    return out


def read_mathqa(path: str | Path) -> list[Problem]:
    """MathQA: the public ``test.json`` (a list of ``Problem``, ``options``, ``correct``) or the
    released code's JSONL (``question``, ``answer``). The question lists the options one per line
    (``a ) 38``), as the released few-shot prompt does."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass the MathQA file with --data-dir")
    recs: list[tuple[str, dict[str, Any]]]
    if path.suffix == ".jsonl":
        recs = [(f"{path}:{n}", r) for n, r in _jsonl(path)]
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of problems")
        recs = [(f"{path}[{i}]", r) for i, r in enumerate(data)]
    out: list[Problem] = []
    for where, rec in recs:
        if "Problem" in rec:
            opts = _field(rec, "options", where)
            parts = re.findall(r"([a-e])\s*\)\s*(.*?)(?=\s*,?\s*[a-e]\s*\)|$)", opts)
            if not parts:
                raise DataError(f"{where}: options {opts[:60]!r} are not 'a ) x , b ) y ...'")
            question = _field(rec, "Problem", where) + "\n" + "\n".join(f"{k} ) {v.strip()}" for k, v in parts)
            gold = str(rec.get("correct", "")).strip().lower()
        else:
            question, gold = _field(rec, "question", where), _field(rec, "answer", where).strip().lower()[:1]
        if gold not in ("a", "b", "c", "d", "e"):
            raise DataError(f"{where}: no parsable gold answer (expected a letter a-e; got {gold!r})")
        out.append(Problem(f"mathqa-{len(out)}", question, gold, "mathqa", source=where))
    return out


# ---------------------------------------------------------------------------------------------
# generated arithmetic word problems


ARITH_DIFFICULTIES = ("easy", "hard")


@dataclass(frozen=True)
class ArithConfig:
    """Settings of the arithmetic word-problem generator.

    steps : operations after the starting amount, 1-6 (the solution: a "starts with" step, then one
        step per operation).
    difficulty : ``easy``: numbers 2-9, additions and subtractions, results below 50;
        ``hard``: numbers 2-40, also multiplications, results up to 2,000.
    n : problems to generate.
    seed : the generator's seed (problem ``i`` depends only on ``seed`` and ``i``).
    """

    steps: int = 1  # SmolLM2-135M: 0.15 of the 1-step easy problems zero-shot, 0.57 three-shot (docs/attack.md)
    difficulty: Literal["easy", "hard"] = "easy"
    n: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 6:
            raise ConfigError(f"option 'arith.steps' must be in [1, 6]; got {self.steps}")
        if self.difficulty not in ARITH_DIFFICULTIES:
            raise ConfigError(f"option 'arith.difficulty' must be one of {list(ARITH_DIFFICULTIES)}; "
                              f"got {self.difficulty!r}")
        if not 1 <= self.n <= 100_000:
            raise ConfigError(f"option 'arith.n' must be in [1, 100000]; got {self.n}")


_NAMES = ("Tom", "Mia", "Sam", "Ana", "Ben", "Lily", "Omar", "Zoe", "Leo", "Ava")
_ITEMS = ("apples", "marbles", "stickers", "books", "cookies", "coins", "pencils", "shells")
_MORE = ("buys {b} more {item}", "finds {b} more {item}", "gets {b} more {item} from a friend")
_LESS = ("gives {b} {item} to a friend", "loses {b} {item}", "uses {b} {item}")
_TIMES = ("ends up with {b} times as many {item} as before",)


def _arith_one(cfg: ArithConfig, index: int) -> Problem:
    rng = random.Random(f"arith:{cfg.seed}:{cfg.difficulty}:{cfg.steps}:{index}")
    hard = cfg.difficulty == "hard"
    lo, hi, cap = (2, 40, 2000) if hard else (2, 9, 50)
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    for _ in range(1000):  # draw until every number is distinct (so the chain rewrite is unambiguous)
        value = rng.randint(lo, hi)
        used = {value}
        sentences = [f"{name} has {value} {item}."]
        steps, chain = [f"{name} starts with {value} {item}."], []
        ok = True
        for k in range(cfg.steps):
            ops = ["+", "-"] + (["*"] if hard else [])
            op = rng.choice(ops)
            b = rng.randint(2, 5) if op == "*" else rng.randint(lo, hi)
            new = {"+": value + b, "-": value - b, "*": value * b}[op]
            if b in used or new in used or new <= 0 or new > cap:
                ok = False
                break
            used |= {b, new}
            template = rng.choice({"+": _MORE, "-": _LESS, "*": _TIMES}[op])
            who = "He" if name in ("Tom", "Sam", "Ben", "Omar", "Leo") else "She"
            action = template.format(b=b, item=item)
            sentences.append(f"{'Then ' if k else ''}{who if k == 0 else who.lower()} {action}.")
            expr = f"{value} {op} {b}"
            chain.append(Calc(expr.replace(" ", ""), float(new)))
            # the step mirrors the question's sentence, so a small model can follow the exemplars
            steps.append(f"{who} {action}, so {who.lower()} has {value} {'x' if op == '*' else op} {b} = {new} {item}.")
            value = new
        if ok:
            question = " ".join(sentences) + f" How many {item} does {name} have now?"
            return Problem(f"arith-{cfg.difficulty}-{cfg.steps}-{cfg.seed}-{index}", question, str(value), "number",
                           tuple(chain), tuple(steps), f"arith(seed={cfg.seed}, index={index})")
    raise RuntimeError("arith generator could not draw distinct numbers")  # unreachable for valid configs


def generate_arith(cfg: ArithConfig | None = None, **overrides: Any) -> list[Problem]:
    """``cfg.n`` multi-step arithmetic word problems with their solution chains.

    >>> p = generate_arith(n=1, steps=2, seed=3)[0]
    >>> len(p.chain), len(p.solution)
    (2, 3)
    >>> p.solution[1]
    'She gets 4 more pencils from a friend, so she has 3 + 4 = 7 pencils.'
    """
    cfg = replace(cfg or ArithConfig(), **overrides) if overrides else (cfg or ArithConfig())
    return [_arith_one(cfg, i) for i in range(cfg.n)]


# ---------------------------------------------------------------------------------------------
# the deterministic rewrite: change one number, recompute the chain


def _numbers(text: str) -> list[re.Match[str]]:
    return list(NUMBER_RE.finditer(text))


def _value(m: re.Match[str]) -> float:
    return _to_float(m.group(0))


def _substitute(text: str, mapping: dict[float, float], *, limit: int | None = None) -> str:
    """Replace numbers of ``text`` whose value is a key of ``mapping`` (keeping comma style)."""
    count = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal count
        v = _value(m)
        for old, new in mapping.items():
            if abs(v - old) < 1e-9 and (limit is None or count < limit):
                count += 1
                return format_number(new, commas="," in m.group(0))
        return m.group(0)

    return NUMBER_RE.sub(sub, text)


def _nice(old: float, new: float) -> bool:
    if not math.isfinite(new) or new < 0:
        return False
    return abs(old - round(old)) > 1e-9 or abs(new - round(new)) < 1e-9  # integers stay integers


def perturb_problem(problem: Problem, seed: int = 0, *, tries: int = 12) -> Problem | None:
    """The problem with one question number changed and its chain recomputed, or None.

    A candidate number appears exactly once in the question, feeds at least one calculation and is
    no calculation's result. Its new value is drawn from ``seed`` (a shift by 1-9 or a factor of
    2-3); it is kept when every recomputed result is finite, non-negative, integral where the old
    one was, and the final answer changes. The question and the solution steps are rewritten by
    value (so a value that also appears elsewhere for another reason changes too: a known limit).
    """
    if not problem.chain or problem.kind != "number":
        return None
    rng = random.Random(f"perturb:{seed}:{problem.id}")
    q_counts: dict[float, int] = {}
    for m in _numbers(problem.question):
        q_counts[_value(m)] = q_counts.get(_value(m), 0) + 1
    results = {c.result for c in problem.chain}
    leaves: list[float] = []
    twice: set[float] = set()  # "2/2" (half of 2): the same value is also a constant; skip it
    for c in problem.chain:
        values = [_value(m) for m in _numbers(c.expr)]
        twice |= {v for v in values if values.count(v) > 1}
        leaves += [v for v in values if q_counts.get(v) == 1 and v not in results and v not in leaves]
    leaves = [v for v in leaves if v not in twice]
    if not leaves:
        return None
    for _ in range(tries):
        leaf = rng.choice(leaves)
        new_leaf = leaf + rng.randint(1, 9) if rng.random() < 0.7 else leaf * rng.randint(2, 3)
        if new_leaf in q_counts or new_leaf in results:  # a value already in the text would be ambiguous
            continue
        mapping = {leaf: float(new_leaf)}
        chain = []
        ok = True
        for c in problem.chain:
            expr = _substitute(c.expr, mapping)
            try:
                new = eval_arithmetic(expr)
            except ValueError:
                ok = False
                break
            if not _nice(c.result, new):
                ok = False
                break
            if abs(new - c.result) > 1e-9:
                mapping.setdefault(c.result, new)
            chain.append(Calc(expr, new))
        if not ok or not chain:
            continue
        new_answer = format_number(chain[-1].result)
        try:
            if abs(float(new_answer) - float(problem.answer)) < 1e-9:
                continue
        except ValueError:
            return None
        question = _substitute(problem.question, {leaf: float(new_leaf)}, limit=1)
        steps = tuple(_substitute(s, mapping) for s in problem.solution)
        return replace(problem, id=f"{problem.id}~{format_number(new_leaf)}", question=question,
                       answer=new_answer, chain=tuple(chain), solution=steps,
                       source=f"{problem.source} with {format_number(leaf)} -> {format_number(new_leaf)}")
    return None


# ---------------------------------------------------------------------------------------------
# one entry point for the task


READERS: dict[str, Callable[[Path], list[Problem]]] = {
    "gsm8k": read_gsm8k, "math": read_math, "csqa": read_csqa, "mathqa": read_mathqa,
}
# where each public file comes from (no automatic download: these hosts are not always reachable)
SOURCES = {
    "gsm8k": "test.jsonl from https://github.com/openai/grade-school-math (grade_school_math/data/)",
    "math": "the MATH archive (https://github.com/hendrycks/math): a folder holding test/algebra/*.json",
    "csqa": "dev_rand_split.jsonl from https://www.tau-nlp.sites.tau.ac.il/commonsenseqa",
    "mathqa": "test.json from https://math-qa.github.io (MathQA.zip)",
}


def load_problems(dataset: str, path: str | Path | None = None, *, limit: int | None = None,
                  arith: ArithConfig | None = None) -> list[Problem]:
    """The first ``limit`` problems of ``dataset`` (``arith``, ``gsm8k``, ``math``, ``csqa``,
    ``mathqa``) read from ``path`` (a file, or MATH's folder); ``arith`` is generated."""
    if dataset == "arith":
        problems = generate_arith(arith or ArithConfig())
    elif dataset in READERS:
        if path is None:
            raise DataError(f"dataset '{dataset}' needs its file: pass --data-dir PATH ({SOURCES[dataset]})")
        problems = READERS[dataset](Path(path))
    else:
        from recwise.registry import did_you_mean

        raise ConfigError(f"unknown reasoning dataset '{dataset}'"
                          + did_you_mean(dataset, ["arith", *READERS]))
    if not problems:
        raise DataError(f"{path}: no problems read for dataset '{dataset}'")
    return problems[:limit] if limit else problems
