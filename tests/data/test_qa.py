"""QA readers: FlashRAG / NQ-open JSONL, TriviaQA JSON, MMLU CSV, corpora; bad input is one DataError line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recwise.data.qa import qa_set, read_corpus, read_qa_jsonl, read_triviaqa_json
from recwise.errors import ConfigError, DataError


def _write(path: Path, recs: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.fixture
def nq_dir(tmp_path: Path) -> Path:
    _write(tmp_path / "corpus.jsonl", [{"id": "1", "contents": '"Lima"\nLima is the capital of Peru.'},
                                       {"id": "2", "contents": '"Quito"\nQuito is the capital of Ecuador.'}])
    _write(tmp_path / "train.jsonl", [{"id": "a", "question": "capital of peru", "golden_answers": ["Lima"]}])
    _write(tmp_path / "test.jsonl", [{"question": "capital of ecuador", "answer": ["Quito", "San Francisco de Quito"]}])
    return tmp_path


def test_flashrag_and_nq_open_lines_and_the_corpus(nq_dir: Path) -> None:
    qa = qa_set("nq", nq_dir)
    col = qa.collection
    assert col.doc_ids.to_list() == ["1", "2"] and col.titles.to_list() == ["Lima", "Quito"]
    assert col.texts[0] == "Lima is the capital of Peru."
    assert qa.answers == (("Lima",), ("Quito", "San Francisco de Quito"))
    assert qa.rows("train").tolist() == [0] and qa.rows("test").tolist() == [1]
    assert not qa.multiple_choice


def test_a_question_without_an_answer_names_file_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.jsonl", [{"question": "q1", "golden_answers": ["x"]},
                                      {"question": "q2", "golden_answers": []}])
    with pytest.raises(DataError, match=r"t\.jsonl:2: question has no answer"):
        read_qa_jsonl(p)


def test_corpus_needs_ids_text_and_unique_ids(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"c\.jsonl:1: .*'contents'"):
        read_corpus(_write(tmp_path / "c.jsonl", [{"id": "1", "body": "x"}]))
    with pytest.raises(DataError, match="repeats document ids"):
        read_corpus(_write(tmp_path / "c.jsonl", [{"_id": "1", "text": "x"}, {"_id": "1", "text": "y"}]))


def test_triviaqa_original_json_keeps_value_and_aliases(tmp_path: Path) -> None:
    p = tmp_path / "dev.json"
    p.write_text(json.dumps({"Data": [{"QuestionId": "tq1", "Question": "Who?", "Answer": {
        "Value": "Ann", "Aliases": ["Ann", "Anne"]}}]}))
    assert read_triviaqa_json(p) == [("tq1", "Who?", ["Ann", "Anne"])]


def test_mmlu_csv_rows_and_a_bad_row(tmp_path: Path) -> None:
    for split in ("dev", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / split / f"astronomy_{split}.csv").write_text('"What orbits Earth?",Moon,Sun,Mars,Venus,A\n')
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d", "title": "Moon", "text": "The Moon orbits."}) + "\n")
    qa = qa_set("mmlu", tmp_path)
    assert qa.multiple_choice and qa.choices[1] == ("Moon", "Sun", "Mars", "Venus")
    assert qa.answers[1] == ("A",) and qa.kinds[1] == "astronomy"
    (tmp_path / "test" / "astronomy_test.csv").write_text("q,a,b,c,d,E\n")
    with pytest.raises(DataError, match=r"astronomy_test\.csv:1: an MMLU row"):
        qa_set("mmlu", tmp_path)


def test_unknown_set_and_missing_corpus(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown QA dataset 'nqq'.*nq"):
        qa_set("nqq", tmp_path)
    with pytest.raises(DataError, match="needs a corpus"):
        qa_set("nq", tmp_path)
