"""`recwise run retrieval` / `recwise bench retrieval` end to end on a tiny planted BEIR folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from recwise.cli import main
from recwise.data.retrieval import load_collection
from recwise.tasks.retrieval import protocol
from tests.tasks.retrieval.conftest import ScriptedBackend


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path / "home"))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_run_bm25_writes_results_and_a_trec_run(topics: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["run", "retrieval", "--dataset", "topics", "--data-dir", str(topics), "--arm", "bm25",
                 "--set", "folds.k=3", "--out", str(out), "--quiet"])
    assert code == 0
    rows = _rows(out / "results.csv")
    assert {r["segment"] for r in rows} == {"all", "fold=0", "fold=1", "fold=2"}
    assert {r["metric"] for r in rows} == {"ndcg@10", "mrr@10", "recall@100", "map"}
    got = {r["metric"]: float(r["value"]) for r in rows if r["segment"] == "all"}
    assert got["mrr@10"] == 1.0 and got["recall@100"] == 1.0  # every topic's query finds its documents first
    trec = (out / "runs" / "bm25.trec").read_text().splitlines()
    assert {line.split()[0] for line in trec} == {f"q{t}" for t in range(6)}
    assert all(len(line.split()) == 6 for line in trec)
    audit = json.loads((out / "run.json").read_text())["false_negative_audit"]
    # ranks 1-10 of a 24-document corpus hold each query's 4 judged documents; ranks 11-24 none
    assert audit["windows"][0] == {"lo": 1, "hi": 10, "documents": 60, "relevant": 24, "share": 0.4}
    assert audit["windows"][1]["documents"] == 6 * 14 and audit["windows"][1]["relevant"] == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--arm", "bm26"], "unknown arm 'bm26'; did you mean 'bm25'"),
    (["--arm", "finetune", "--negatives", "hybrid", "--mix", "1.5"], "--mix must be in [0, 1]"),
    (["--set", "train.lrr=1"], "unknown option 'train.lrr'"),
    (["--set", "neg.lo=50", "--set", "neg.hi=10"], "neg.lo"),
    (["--set", "folds.k=9"], "exceeds the 6 judged queries"),
])
def test_bad_options_are_one_line_and_exit_2(topics: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              argv: list[str], message: str) -> None:
    code = main(["run", "retrieval", "--dataset", "topics", "--data-dir", str(topics), "--out", str(tmp_path / "o"),
                 "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_bench_runs_arms_by_seeds_through_the_grid(topics: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code = main(["bench", "retrieval", "--dataset", "topics", "--data-dir", str(topics), "--arms", "bm25",
                 "--seeds", "2", "--set", "folds.k=2", "--out", str(out), "--store", "none", "--quiet"])
    assert code == 0
    rows = _rows(out / "results.csv")
    assert {(r["model"], r["seed"]) for r in rows} == {("bm25", "0"), ("bm25", "1")}
    md = (out / "results.md").read_text()
    assert "| bm25 | 2 | 0.9201 ± 0.0000 | 1.0000 ± 0.0000 |" in md and "False-negative audit" in md


@pytest.mark.slow
def test_finetune_hybrid_with_a_scripted_llm_and_resume(topics: Path, tmp_path: Path) -> None:
    col = load_collection("topics", topics)
    opts = {"folds": {"k": "2"}, "train": {"batch_size": "4", "max_seq_length": "24"},
            "neg": {"lo": "1", "hi": "20"},
            "synth": {"min_words": "3", "band_lo": "-1", "band_hi": "1", "tau": "0.999"}}
    out = tmp_path / "ft"
    backend = ScriptedBackend()
    from recwise.llm import Generator, LLMCache

    gen = Generator(backend, LLMCache(tmp_path / "c.sqlite"))
    rows = protocol.run(col, "finetune-hybrid-0.5", 0, opts, out_dir=out, dataset="topics", generator=gen)
    assert {r.segment for r in rows} == {"all", "fold=0", "fold=1"}
    info = json.loads((out / "run.json").read_text())
    for neg in info["negatives"]:
        assert neg["synthetic"] + neg["mined"] == neg["triples"] > 0 and neg["synthetic"] > 0
    assert info["synthesis"][0]["rejected_by_reflection"] == 1  # the 'heat' query
    assert (out / "negatives.jsonl").exists() and (out / "runs" / "finetune-hybrid-0.5.trec").exists()
    assert len(info["train"]) == 2 and info["train"][0]["train_samples_per_second"] > 0
    calls = backend.rows
    (out / "folds" / "fold1.json").unlink()
    again = protocol.run(col, "finetune-hybrid-0.5", 0, opts, out_dir=out, dataset="topics", generator=gen,
                         resume=True)
    info2 = json.loads((out / "run.json").read_text())
    assert len(info2["fold_seconds"]) == 1  # fold 0 came from its saved file
    assert backend.rows == calls  # the synthesis was answered by the cache
    assert len(again) == len(rows)
    log = [json.loads(line) for line in (out / "negatives.jsonl").read_text().splitlines()]
    assert {r["fold"] for r in log} == {0, 1} and len(log) == 2 * 6  # one record per judged query and fold


def test_negatives_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "negatives.jsonl"
    recs = [{"query_row": 0, "query": "q a", "positive": "p", "draft": "d", "reflection": "REJECT", "negative": "",
             "verdict": "rejected-by-reflection"},
            {"query_row": 1, "query": "q b", "positive": "p", "draft": "d2", "reflection": "d2", "negative": "d2",
             "verdict": "kept", "cos_query": 0.41, "cos_positive": 0.77}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main(["retrieval", "negatives", "show", str(path), "--verdict", "kept"]) == 0
    out = capsys.readouterr().out
    assert "[kept] query row 1  cos(query) 0.410  cos(positive) 0.770" in out and "q a" not in out
    assert "1 of 2 records shown" in out and "kept: 1, rejected-by-reflection: 1" in out
    path.write_text("{bad\n")
    assert main(["retrieval", "negatives", "show", str(path)]) == 2
    assert "negatives.jsonl:1: malformed JSON" in capsys.readouterr().err


@pytest.mark.parametrize(("cap", "per_query"), [(0, 4), (1, 1), (3, 3), (9, 4)])
def test_pairs_per_query_caps_the_training_triples(topics: Path, cap: int, per_query: int) -> None:
    col = load_collection("topics", topics)
    judged = col.judged_queries()
    cfg = protocol.configs({"train": {"pairs_per_query": str(cap)}})
    ctx = protocol._Context(col, col.doc_texts(), judged, protocol.folds_of(len(judged), cfg["folds"]),
                            col.relevant(), cfg, False)
    info: dict = {}
    triples = protocol._triples(ctx, judged, "inbatch", None, 0, {}, info)
    assert len(triples) == info["negatives"][0]["triples"] == per_query * len(judged)
    by_query: dict[str, set[str]] = {}
    for q, pos, neg in triples:
        assert neg is None
        by_query.setdefault(q, set()).add(pos)
    assert all(len(v) == per_query for v in by_query.values())  # distinct positives, none repeated
    if cap == 1:  # another seed draws other positives for some query
        other = protocol._triples(ctx, judged, "inbatch", None, 7, {}, {})
        assert [t[1] for t in other] != [t[1] for t in triples]


def test_bad_pairs_per_query(topics: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "retrieval", "--dataset", "topics", "--data-dir", str(topics), "--out", str(tmp_path / "o"),
                 "--quiet", "--set", "train.pairs_per_query=-1"])
    assert code == 2 and "train.pairs_per_query" in capsys.readouterr().err


@pytest.mark.slow
def test_synthesise_alone_fills_the_cache_a_cell_then_reads(topics: Path, tmp_path: Path) -> None:
    col = load_collection("topics", topics)
    opts = {"neg": {"lo": "1", "hi": "20"}, "synth": {"min_words": "3", "band_lo": "-1", "band_hi": "1",
                                                      "tau": "0.999"}}
    backend = ScriptedBackend()
    from recwise.llm import Generator, LLMCache

    gen = Generator(backend, LLMCache(tmp_path / "c.sqlite"))
    counts = protocol.synthesise_all(col, opts, log_path=tmp_path / "neg.jsonl", generator=gen)
    assert counts["pairs"] == 6 and counts["llm_calls"] == 12 and counts["rejected_by_reflection"] == 1
    assert len((tmp_path / "neg.jsonl").read_text().splitlines()) == 6
    again = protocol.synthesise_all(col, opts, generator=gen)
    assert again["llm_calls"] == 0 and again["cache_hits"] == 12 and backend.rows == 12


def test_bench_markdown_shows_one_audit_per_miner_and_synthesis_tokens(tmp_path: Path) -> None:
    from recwise.results import ResultRow
    from recwise.tasks.retrieval import bench_markdown

    def cell(arm: str, info: dict) -> Path:
        d = tmp_path / arm
        d.mkdir()
        (d / "per_query.json").write_text(json.dumps({"queries": ["a", "b"], **{m: [0.5, 0.25] for m in
                                                      ("ndcg@10", "mrr@10", "recall@100", "map")}}))
        (d / "run.json").write_text(json.dumps({"seed": 0, **info}))
        return d

    win = [{"lo": 1, "hi": 10, "documents": 20, "relevant": 5, "share": 0.25}]
    dirs = {"bm25": [cell("bm25", {"false_negative_audit": {"miner": "bm25", "windows": win}})],
            "zeroshot": [cell("zeroshot", {"false_negative_audit": {"miner": "dense", "windows": win}})],
            "finetune-synthetic": [cell("finetune-synthetic", {"synthesis": [
                {"fold": 0, "pairs": 2, "kept": 1, "rejected_by_reflection": 0, "rejected_by_guard": 1,
                 "llm_calls": 4, "cache_hits": 0, "completion_tokens": 321, "wall_seconds": 1.5}]})]}
    rows = [ResultRow("retrieval", "x", a, 0, "test", "all", "ndcg@10", 0.375) for a in dirs]
    md = bench_markdown(rows, dirs, "x", baseline="bm25")
    assert "False-negative audit (bm25 ranking" in md and "False-negative audit (dense ranking" in md
    assert "| finetune-synthetic | 0 | 0 | 2 | 1 | 0 | 1 | 4 | 0 | 321 | 1.5 |" in md


@pytest.mark.slow
def test_zeroshot_cell_audits_the_dense_ranking(topics: Path, tmp_path: Path) -> None:
    col = load_collection("topics", topics)
    out = tmp_path / "zs"
    rows = protocol.run(col, "zeroshot", 0, {"folds": {"k": "2"}}, out_dir=out, dataset="topics")
    assert {r.segment for r in rows} == {"all", "fold=0", "fold=1"}
    audit = json.loads((out / "run.json").read_text())["false_negative_audit"]
    assert audit["miner"] == "dense"
    first = audit["windows"][0]  # ranks 1-10 of 24 documents hold at most the 4 judged documents of each topic
    assert first["documents"] == 60 and 0 < first["relevant"] <= 24
    assert sum(w["relevant"] for w in audit["windows"]) == 24  # every judged document is ranked somewhere in 1-200
