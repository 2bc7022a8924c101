"""Retrieval collections: the SMART files of Cranfield/CISI, a BEIR-layout folder, the cache, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recwise.cli import main
from recwise.data.retrieval import TextColumn, gain_of, load_collection
from recwise.errors import ConfigError, DataError
from tests.data.conftest import SHARED_DATA

RETRIEVAL = SHARED_DATA / "retrieval"


def write_beir(folder: Path, *, corpus: list[str] | None = None, queries: list[str] | None = None,
               qrels: list[str] | None = None) -> Path:
    """A tiny BEIR-layout folder: 4 documents, 2 queries, graded test qrels (lines may be replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    corpus = corpus if corpus is not None else [
        json.dumps({"_id": f"d{i}", "title": f"title {i}", "text": f"text of document {i}"}) for i in range(4)]
    queries = queries if queries is not None else [json.dumps({"_id": "q1", "text": "first"}),
                                                   json.dumps({"_id": "q2", "text": "second"})]
    qrels = qrels if qrels is not None else ["q1\td0\t2", "q1\td1\t1", "q2\td3\t1", "q2\td2\t0"]
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + ("\n" if corpus else ""))
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")
    return folder


def test_text_column_round_trips_unicode() -> None:
    col = TextColumn.from_strings(["a", "", "Zürich ∑", "x" * 1000])
    assert len(col) == 4 and col[2] == "Zürich ∑" and col.to_list()[3] == "x" * 1000 and col.take([1, 0]) == ["", "a"]


@pytest.mark.parametrize(("rule", "grade", "gain"), [
    ("cranfield", 1, 4), ("cranfield", 4, 1), ("cranfield", -1, 0), ("cranfield", 5, 0),
    ("binary", 0, 1), ("graded", 2, 2), ("graded", 0, 0), ("graded", -1, 0)])
def test_gain_rule(rule: str, grade: int, gain: int) -> None:
    assert gain_of(rule, grade) == gain


def test_cranfield_query_numbering_and_grades(tmp_path: Path) -> None:
    if not (RETRIEVAL / "cranfield").is_dir():
        pytest.skip("../shared/data/retrieval/cranfield not available")
    col = load_collection("cranfield", RETRIEVAL / "cranfield", root=tmp_path)
    assert (col.n_docs, col.n_queries) == (1400, 225)
    # cran.qry's third record is ".I 004"; the qrels call it query 3 (position), so its id is "3"
    assert col.query_ids[2] == "3" and col.query_texts[2].startswith("what problems of heat conduction in composite")
    rel = col.qrels_dict()
    # cranqrel line "1 184 2": code 2 -> gain 3; "1 486 -1" is not relevant
    assert rel["1"]["184"] == 3 and "486" not in rel["1"]
    assert np.unique(col.qrel_gain).tolist() == [0, 1, 2, 3, 4]
    assert len(col.judged_queries()) == 225
    # the title is not repeated at the head of the text
    assert col.titles[0].startswith("experimental investigation") and col.texts[0].startswith("an experimental study")


def test_cisi_binary_and_unjudged_queries(tmp_path: Path) -> None:
    if not (RETRIEVAL / "cisi").is_dir():
        pytest.skip("../shared/data/retrieval/cisi not available")
    col = load_collection("cisi", RETRIEVAL / "cisi", root=tmp_path)
    assert (col.n_docs, col.n_queries, len(col.judged_queries())) == (1460, 112, 76)
    assert set(col.qrel_gain.tolist()) == {1}


def test_beir_layout_and_cache(tmp_path: Path) -> None:
    raw = write_beir(tmp_path / "raw" / "tiny")
    col = load_collection("tiny", raw, root=tmp_path)
    assert col.doc_texts()[0] == "title 0\n\ntext of document 0"
    assert col.qrels_dict() == {"q1": {"d0": 2, "d1": 1}, "q2": {"d3": 1}}  # score 0 is not relevant
    assert col.judged_queries().tolist() == [0, 1]
    entries = list((tmp_path / "prepared").iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").exists()
    again = load_collection("tiny", raw, root=tmp_path)  # from the cache
    assert again.doc_ids.to_list() == col.doc_ids.to_list() and again.qrel_gain.tolist() == col.qrel_gain.tolist()
    import pickle  # the grid's Ray executor ships the collection to its workers

    shipped = pickle.loads(pickle.dumps(again))
    assert shipped.doc_texts() == col.doc_texts() and shipped.qrels_dict() == col.qrels_dict()
    (raw / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")  # a change: a new key
    assert load_collection("tiny", raw, root=tmp_path).qrels_dict() == {"q1": {"d2": 1}}


BAD = [
    ("corpus", ['{"_id": "d0", "text": "ok"}', '{"_id": "d1", "text": '], "corpus.jsonl:2: malformed JSON"),
    ("corpus", [], "corpus.jsonl is empty"),
    ("qrels", ["q1\td0"], "test.tsv:2: qrels line needs query-id, corpus-id and score"),
    ("qrels", ["q1\td9\t1"], "test.tsv:2: judgment names unknown document 'd9'"),
    ("qrels", ["q1\td0\t1", "q7\td0\t1"], "test.tsv:3: judgment names unknown query 'q7'"),
    ("queries", ['{"text": "no id"}'], "queries.jsonl:1: expected a JSON object with an '_id' field"),
]


@pytest.mark.parametrize(("part", "lines", "message"), BAD)
def test_bad_input_names_file_and_line_and_leaves_no_cache(tmp_path: Path, part: str, lines: list[str],
                                                            message: str) -> None:
    raw = write_beir(tmp_path / "raw" / "bad", **{part: lines})
    with pytest.raises(DataError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_collection("bad", raw, root=tmp_path)
    assert not (tmp_path / "prepared").exists() or not any((tmp_path / "prepared").iterdir())


def test_bad_input_through_the_cli_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path / "home"))
    raw = write_beir(tmp_path / "raw" / "bad", qrels=["q1\td0"])
    code = main(["run", "retrieval", "--dataset", "bad", "--data-dir", str(raw), "--arm", "bm25",
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "test.tsv:2:" in err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_smart_qrels_missing_column(tmp_path: Path) -> None:
    raw = tmp_path / "cran"
    raw.mkdir()
    (raw / "cran.all.1400").write_text(".I 1\n.T\nwing\n.W\nwing flow\n.I 2\n.T\nplate\n.W\nflat plate\n")
    (raw / "cran.qry").write_text(".I 001\n.W\nwing flow?\n.I 004\n.W\nplate?\n")
    (raw / "cranqrel").write_text("1 1 2\n2 2\n")
    with pytest.raises(DataError, match=r"cranqrel:2: qrels line needs query, document and grade"):
        load_collection("cranfield", raw, root=tmp_path)
    (raw / "cranqrel").write_text("1 1 2\n2 2 1\n")
    col = load_collection("cranfield", raw, root=tmp_path)
    assert col.qrels_dict() == {"1": {"1": 3}, "2": {"2": 4}}  # query ".I 004" is query 2 of the qrels


def test_unknown_name_without_folder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="did you mean 'cranfield'"):
        load_collection("cranfeld")


def test_download_of_a_login_source_says_what_to_do(tmp_path: Path) -> None:
    from recwise.data.download import download

    with pytest.raises(DataError, match="not redistributed.*--data-dir"):
        download("robust04", tmp_path / "r04", quiet=True)


def test_download_unpacks_a_beir_zip_keeping_its_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    from recwise.data import retrieval
    from recwise.data.download import download

    src = write_beir(tmp_path / "src")
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            zf.write(src / f, f"tiny/{f}")
    monkeypatch.setitem(retrieval.RETRIEVAL_DATASETS, "tiny",
                        retrieval.RetrievalSource("tiny", "test", "beir", (archive.as_uri(),)))
    dest = download("tiny", tmp_path / "raw" / "tiny", quiet=True)
    assert (dest / "qrels" / "test.tsv").is_file() and not list(dest.glob(".download-*"))
    assert load_collection("tiny", dest, root=tmp_path).qrels_dict() == {"q1": {"d0": 2, "d1": 1}, "q2": {"d3": 1}}
    monkeypatch.setitem(retrieval.RETRIEVAL_DATASETS, "gone",
                        retrieval.RetrievalSource("gone", "test", "beir", ((tmp_path / "no.zip").as_uri(),)))
    with pytest.raises(DataError, match="cannot download"):
        download("gone", tmp_path / "raw" / "gone", quiet=True)
    assert list((tmp_path / "raw" / "gone").iterdir()) == []  # nothing half-written
