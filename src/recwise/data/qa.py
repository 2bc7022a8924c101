"""Question-answering sets for retrieval-augmented generation: questions, gold answers and a corpus.

A :class:`QASet` is a retrieval :class:`~recwise.data.retrieval.Collection` (the corpus, the
questions as its queries, and the supporting documents as its judgments when the set knows them)
plus, per question, its gold answers, its split (train / test), its kind (a template name or a
subject) and, for multiple choice, its options.

Readers of the public layouts (every malformed line is a one-line DataError naming file and line):

- **NQ / TriviaQA, FlashRAG layout** (what RADIO reads): ``<dir>/train.jsonl``, ``<dir>/dev.jsonl``
  and/or ``<dir>/test.jsonl``, one ``{"id", "question", "golden_answers": [...]}`` per line. NQ-open's
  own ``{"question", "answer": [...]}`` lines are read as well.
- **TriviaQA, original JSON** (``qa/*.json``): ``{"Data": [{"QuestionId", "Question", "Answer":
  {"Value", "Aliases"}}]}``; answers are the value and its aliases.
- **MMLU** (hendrycks/test): ``<dir>/{dev,val,test}/<subject>_<split>.csv`` without a header,
  rows ``question, A, B, C, D, answer letter``; the gold answer is the letter.
- **Corpus**: JSONL of ``{"id", "contents"}`` (FlashRAG's wiki dumps: the title on the first line
  of ``contents``) or ``{"_id", "title", "text"}`` (BEIR), given by path.

The offline set built from GeoNames facts is :mod:`recwise.data.geofacts`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recwise.data.retrieval import Collection, TextColumn
from recwise.errors import ConfigError, DataError

__all__ = ["QASet", "QA_DATASETS", "qa_set", "read_corpus", "read_mmlu", "read_qa_jsonl", "read_triviaqa_json"]

QA_DATASETS = ("geofacts", "nq", "triviaqa", "mmlu")
CHOICE_LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class QASet:
    """Questions with gold answers over a corpus (see the module docstring).

    ``collection.query_texts[i]`` is question ``i``; ``answers[i]`` its gold answers (never empty);
    ``is_train[i]`` its split; ``kinds[i]`` its template or subject; ``choices[i]`` its options
    (multiple choice only, else an empty tuple).
    """

    collection: Collection
    answers: tuple[tuple[str, ...], ...]
    is_train: np.ndarray  # bool, one per question
    kinds: tuple[str, ...]
    choices: tuple[tuple[str, ...], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.collection.n_queries
        if len(self.answers) != n or len(self.is_train) != n or len(self.kinds) != n:
            raise DataError(f"QA set '{self.collection.name}': {n} questions but {len(self.answers)} answer "
                            f"lists, {len(self.is_train)} split flags, {len(self.kinds)} kinds")
        if self.choices and len(self.choices) != n:
            raise DataError(f"QA set '{self.collection.name}': {len(self.choices)} choice lists for {n} questions")
        for i, a in enumerate(self.answers):
            if not a or not all(s.strip() for s in a):
                raise DataError(f"QA set '{self.collection.name}': question {self.collection.query_ids[i]!r} "
                                f"has no answer (an empty answer cannot be scored); drop it or give its answer")

    @property
    def multiple_choice(self) -> bool:
        return bool(self.choices)

    def rows(self, split: str) -> np.ndarray:
        """Question rows of ``split`` (``train`` or ``test``), in file order."""
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test'; got {split!r}")
        mask = self.is_train if split == "train" else ~self.is_train
        return np.flatnonzero(mask).astype(np.int64)


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DataError(f"file {path} does not exist")
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not a JSON object ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            out.append((lineno, rec))
    return out


def read_corpus(path: Path) -> tuple[list[str], list[str], list[str]]:
    """``(ids, titles, texts)`` of a FlashRAG (``id``, ``contents``) or BEIR (``_id``, ``title``, ``text``) JSONL."""
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    for lineno, rec in _jsonl(Path(path)):
        if "contents" in rec:
            did = rec.get("id")
            title, _, text = str(rec["contents"]).partition("\n")
            title = title.strip().strip('"')
        elif "text" in rec:
            did, title, text = rec.get("_id", rec.get("id")), str(rec.get("title", "")), str(rec["text"])
        else:
            raise DataError(f"{path}:{lineno}: a corpus line needs 'contents' (FlashRAG) or 'text' (BEIR)")
        if did is None or str(did) == "":
            raise DataError(f"{path}:{lineno}: a corpus line needs an 'id' (or '_id')")
        ids.append(str(did))
        titles.append(title)
        texts.append(text)
    if not ids:
        raise DataError(f"corpus {path} is empty")
    if len(set(ids)) != len(ids):
        raise DataError(f"corpus {path} repeats document ids; every id must be unique")
    return ids, titles, texts


def _answers_of(rec: dict[str, Any], path: Path, lineno: int) -> list[str]:
    raw = rec.get("golden_answers", rec.get("answer", rec.get("answers")))
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not [a for a in raw if str(a).strip()]:
        raise DataError(f"{path}:{lineno}: question has no answer ('golden_answers' / 'answer' missing or empty)")
    return [str(a) for a in raw if str(a).strip()]


def read_qa_jsonl(path: Path) -> list[tuple[str, str, list[str]]]:
    """``(id, question, answers)`` from FlashRAG (``golden_answers``) or NQ-open (``answer``) JSONL."""
    out = []
    for lineno, rec in _jsonl(Path(path)):
        q = str(rec.get("question", "")).strip()
        if not q:
            raise DataError(f"{path}:{lineno}: line has no 'question'")
        out.append((str(rec.get("id", f"{Path(path).stem}-{lineno}")), q, _answers_of(rec, Path(path), lineno)))
    return out


def read_triviaqa_json(path: Path) -> list[tuple[str, str, list[str]]]:
    """``(id, question, answers)`` from TriviaQA's original JSON (``Data`` list; value + aliases)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable TriviaQA JSON file ({exc})") from None
    out = []
    for i, rec in enumerate(doc.get("Data", []) if isinstance(doc, dict) else []):
        ans = rec.get("Answer") or {}
        answers = list(dict.fromkeys([str(ans.get("Value", "")), *map(str, ans.get("Aliases", []))]))
        answers = [a for a in answers if a.strip()]
        if not answers:
            raise DataError(f"{path}: entry {i} ({rec.get('QuestionId')}) has no answer")
        out.append((str(rec.get("QuestionId", i)), str(rec["Question"]), answers))
    if not out:
        raise DataError(f"{path}: no 'Data' entries (TriviaQA's original JSON layout)")
    return out


def read_mmlu(folder: Path, split: str) -> list[tuple[str, str, list[str], list[str], str]]:
    """``(id, question, [letter], options, subject)`` from every ``<folder>/<split>/*_<split>.csv``."""
    files = sorted((Path(folder) / split).glob(f"*_{split}.csv"))
    if not files:
        raise DataError(f"no MMLU files {Path(folder) / split}/*_{split}.csv (hendrycks/test layout)")
    out = []
    for f in files:
        subject = f.name.removesuffix(f"_{split}.csv")
        with open(f, encoding="utf-8", newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), 1):
                if len(row) != 6 or row[5].strip() not in CHOICE_LETTERS:
                    raise DataError(f"{f}:{lineno}: an MMLU row is question, A, B, C, D, answer letter; got "
                                    f"{len(row)} columns")
                out.append((f"{subject}-{split}-{lineno}", row[0], [row[5].strip()], row[1:5], subject))
    return out


def _build(name: str, corpus: tuple[list[str], list[str], list[str]],
           questions: Sequence[tuple[str, str, list[str], bool, str, list[str]]], meta: dict[str, Any]) -> QASet:
    ids, titles, texts = corpus
    col = Collection(name, TextColumn.from_strings(ids), TextColumn.from_strings(titles),
                     TextColumn.from_strings(texts), TextColumn.from_strings([q[0] for q in questions]),
                     TextColumn.from_strings([q[1] for q in questions]), np.zeros(0, np.int32), np.zeros(0, np.int32),
                     np.zeros(0, np.int16), np.zeros(0, np.int16), {**meta, "gain_rule": "none"})
    choices = tuple(tuple(q[5]) for q in questions) if any(q[5] for q in questions) else ()
    return QASet(col, tuple(tuple(q[2]) for q in questions), np.asarray([q[3] for q in questions], dtype=bool),
                 tuple(q[4] for q in questions), choices, meta)


def qa_set(name: str, data_dir: str | Path | None = None, *, corpus: str | Path | None = None,
           test_split: str = "test", seed: int = 0, test_share: float = 0.3,
           min_city_population: int = 1_000_000) -> QASet:
    """The QA set ``name``: ``geofacts`` (offline, generated) or ``nq`` / ``triviaqa`` / ``mmlu`` from ``data_dir``.

    ``corpus``: the documents' JSONL (default ``<data_dir>/corpus.jsonl``). ``test_split``: the file
    that holds the test questions (``test`` or ``dev``). ``seed``, ``test_share``,
    ``min_city_population``: geofacts only.
    """
    if name == "geofacts":
        from recwise.data.geofacts import geofacts

        return geofacts(seed=seed, test_share=test_share, min_city_population=min_city_population)
    if name not in QA_DATASETS:
        from recwise.registry import did_you_mean

        raise ConfigError(f"unknown QA dataset {name!r}{did_you_mean(name, QA_DATASETS)}")
    if data_dir is None:
        raise ConfigError(f"QA dataset '{name}' is read from files: pass --data-dir (FlashRAG / hendrycks layout)")
    folder = Path(data_dir)
    corpus_path = Path(corpus) if corpus else folder / "corpus.jsonl"
    if not corpus_path.is_file():
        raise DataError(f"QA dataset '{name}' needs a corpus: {corpus_path} does not exist "
                        f"(give one with --set data.corpus=PATH: FlashRAG or BEIR JSONL)")
    docs = read_corpus(corpus_path)
    rows: list[tuple[str, str, list[str], bool, str, list[str]]] = []
    if name == "mmlu":
        for split, train in (("dev", True), (test_split, False)):
            rows += [(i, q, a, train, subj, opts) for i, q, a, opts, subj in read_mmlu(folder, split)]
    else:
        for split, train in (("train", True), (test_split, False)):
            path = folder / f"{split}.jsonl"
            if name == "triviaqa" and not path.exists() and (folder / f"{split}.json").exists():
                recs = read_triviaqa_json(folder / f"{split}.json")
            else:
                recs = read_qa_jsonl(path)
            rows += [(f"{split}-{i}", q, a, train, name, []) for i, q, a in recs]
    return _build(name, docs, rows, {"source": str(folder), "corpus": str(corpus_path)})
