"""`recwise run rag` / `recwise bench rag` end to end on a tiny FlashRAG-layout folder with a scripted LLM."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from recwise.cli import main
from recwise.llm import Generator, LLMCache
from tests.tasks.rag.test_protocol import CAPITALS, Scripted


@pytest.fixture
def flashrag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path / "home"))
    gen = Generator(Scripted(), LLMCache(str(tmp_path / "cache.sqlite")))
    monkeypatch.setattr("recwise.llm.load_generator", lambda **kw: gen)
    folder = tmp_path / "nq"
    folder.mkdir()
    docs = [{"id": f"d{i}", "contents": f'"{c}"\n{c} is a country whose capital is {cap}.'}
            for i, (c, cap) in enumerate(CAPITALS)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    for split, part in (("train", CAPITALS[:8]), ("test", CAPITALS[8:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(
            {"question": f"What is the capital of {c}?", "golden_answers": [cap]}) + "\n" for c, cap in part))
    return folder


def test_run_and_bench_write_results_and_predictions(flashrag: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["run", "rag", "--dataset", "nq", "--data-dir", str(flashrag), "--arm", "retriever", "--limit", "3",
                 "--set", "retrieve.retriever=bm25", "--out", str(out), "--quiet"])
    assert code == 0
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    got = {r["metric"]: float(r["value"]) for r in rows if r["segment"] == "all"}
    assert {r["model"] for r in rows} == {"retriever"}
    assert got["em"] == 1.0 and got["answer_recall@5"] == 1.0  # bm25 puts the country's own document first
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 3
    bench = tmp_path / "bench"
    code = main(["bench", "rag", "--dataset", "nq", "--data-dir", str(flashrag), "--arms", "retriever",
                 "--seeds", "2", "--limit", "2", "--set", "retrieve.retriever=bm25", "--out", str(bench), "--quiet"])
    assert code == 0
    md = (bench / "results.md").read_text()
    assert "| retriever | 2 | 1.0000 ± 0.0000" in md
    # nq has no support documents (no support recall column); one arm gives no paired test
    assert "| answer_recall@5 | em | f1 | acc |" in md and "acc Δ | p |" not in md


@pytest.mark.parametrize(("args", "msg"), [
    (["--arm", "radoi"], "unknown arm 'radoi'"),
    (["--limit", "-1"], "--limit must be >= 0"),
    (["--set", "radio.smapler=shift"], "radio.smapler"),
    (["--set", "llm.backend=ftp"], "llm.backend"),
])
def test_bad_options_fail_in_one_line(flashrag: Path, args: list[str], msg: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "rag", "--dataset", "nq", "--data-dir", str(flashrag), *args])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
