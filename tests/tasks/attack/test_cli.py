"""``recwise run attack`` / ``recwise bench attack`` end to end with the fake backend: the issue's
command line writes results.csv and attacks.jsonl; bench sweeps attacks x sigma x shots through the
grid runner and a re-run reuses every cell; bad options are one-line errors before data is read."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

import recwise.tasks.attack.protocol as protocol
from recwise.cli import main
from recwise.llm import Generator, LLMCache
from tests.tasks.attack._fake import FakeBackend


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    backend = FakeBackend()
    gen = Generator(backend, LLMCache(str(tmp_path / "cache.sqlite")))
    seen: list[tuple[str, Any]] = []

    def generators(model: str, options: dict[str, dict[str, str]]) -> dict[str, Any]:
        seen.append((model, options))
        return {"target": gen, "assistant": gen, "detector": gen}

    monkeypatch.setattr(protocol, "generators", generators)
    backend.options_seen = seen  # type: ignore[attr-defined]
    return backend


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_run_writes_results_and_attacks(fake: FakeBackend, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    assert main(["run", "attack", "--dataset", "arith", "--attack", "seed-p", "--sigma", "0.6", "--shots", "0",
                 "--model", "smollm2", "--limit", "5", "--seed", "0", "--out", str(out), "--set", "arith.steps=2",
                 "--backend", "http", "--base-url", "http://localhost:8000/v1", "--quiet"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["model"] for r in rows} == {"smollm2"} and {r["dataset"] for r in rows} == {"arith-easy-2"}
    assert {r["segment"] for r in rows} == {"attack=seed-p,sigma=0.6,shots=0"}
    assert float(next(r["value"] for r in rows if r["metric"] == "asr")) == 1.0
    recs = (out / "attacks.jsonl").read_text().splitlines()
    fields = {"question", "clean_output", "clean_answer", "injected", "attacked_output", "attacked_status"}
    assert len(recs) == 5 and fields <= set(json.loads(recs[0]))
    model, options = fake.options_seen[-1]  # type: ignore[attr-defined]
    assert model == "smollm2" and options["llm"] == {"backend": "http", "base_url": "http://localhost:8000/v1"}
    assert "asr 1.000" in capsys.readouterr().out


def test_bench_sweeps_through_the_grid_and_reuses_cells(fake: FakeBackend, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "bench"
    cmd = ["bench", "attack", "--models", "smollm2", "--attacks", "seed-s,preemptive", "--sigmas", "0.2,0.6",
           "--shots", "0,3", "--seeds", "1", "--limit", "4", "--no-detect", "--out", str(out), "--store", "none",
           "--quiet"]
    assert main(cmd) == 0
    stdout = capsys.readouterr().out
    assert "8 cells run, 0 reused, 0 failed" in stdout
    assert "| smollm2 | attack=seed-s,sigma=0.2,shots=3 | 1 |" in stdout
    calls = len(fake.seen)
    assert main(cmd) == 0
    assert "0 cells run, 8 reused" in capsys.readouterr().out and len(fake.seen) == calls


def test_bad_options_are_one_line_errors(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["run", "attack", "--attack", "seed-x"]) == 2
    _one_line_error(capsys, "attack.attack", "seed-x")
    assert main(["run", "attack", "--sigma", "1.5"]) == 2
    _one_line_error(capsys, "attack.sigma")
    assert main(["bench", "attack", "--sigmas", "0.2,x"]) == 2
    _one_line_error(capsys, "--sigmas")
    assert main(["run", "attack", "--set", "arith.stepz=2"]) == 2
    _one_line_error(capsys, "arith.stepz", "steps")
    assert main(["run", "attack", "--epochs", "3"]) == 2
    _one_line_error(capsys, "--epochs does not apply")
    assert main(["run", "attack", "--dataset", "gsm8k"]) == 2
    _one_line_error(capsys, "needs its file", "--data-dir")
    assert main(["run", "attack", "--dataset", "gsm8"]) == 2
    _one_line_error(capsys, "gsm8", "gsm8k")
    assert main(["run", "attack", "--dataset", "gsm8k", "--data-dir", str(tmp_path / "none.jsonl")]) == 2
    _one_line_error(capsys, "none.jsonl", "no such file")
