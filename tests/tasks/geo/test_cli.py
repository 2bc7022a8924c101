"""``recwise run geo`` / ``recwise bench geo`` end to end on the planted split with the fake LLM:
results.csv with km=... segments, predictions.csv, bench through the grid runner, one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

import recwise.data.geo as data_geo
import recwise.retrieval as retrieval
import recwise.tasks.geo.protocol as protocol
from recwise.cli import main
from recwise.llm import Generator, LLMCache
from recwise.models.geo.location import default_weights_path
from tests.tasks.geo._fake import FakeGeoLLM, TrigramEncoder, planted_split

pytestmark = pytest.mark.skipif(not default_weights_path().is_file(),
                                reason="GeoCLIP weights not extracted (scripts/setup.sh)")


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeGeoLLM:
    backend = FakeGeoLLM()
    gen = Generator(backend, LLMCache(str(tmp_path / "cache.sqlite")))
    seen: list[dict[str, Any]] = []

    def make_generator(options: dict[str, Any]) -> Generator:
        seen.append(options.get("llm", {}))
        return gen

    monkeypatch.setattr(protocol, "make_generator", make_generator)
    monkeypatch.setattr(data_geo, "geonames_split", lambda **kw: planted_split())
    monkeypatch.setattr(retrieval, "load_dense_encoder", lambda cfg, **kw: TrigramEncoder())
    backend.seen = seen  # type: ignore[attr-defined]
    return backend


FAST = ["--set", "samples=2", "--set", "candidates=2", "--set", "rag_ks=3,5", "--set", "align.epochs=3",
        "--set", "align.lr=3e-3", "--quiet"]


def test_run_writes_results_and_predictions(fake: FakeGeoLLM, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    assert main(["run", "geo", "--dataset", "geonames", "--arm", "g3", "--seed", "0", "--limit", "12", "--out",
                 str(out), "--backend", "http", "--base-url", "http://localhost:9/v1", "--llm-model", "llava",
                 *FAST]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["model"] for r in rows} == {"g3"}
    assert [r["segment"] for r in rows if r["metric"] == "accuracy"] == ["km=1", "km=25", "km=200", "km=750",
                                                                         "km=2500"]
    assert len(list(csv.DictReader((out / "predictions.csv").open()))) == 12
    assert fake.seen[-1] == {"model": "llava", "backend": "http", "base_url": "http://localhost:9/v1"}  # type: ignore[attr-defined]
    assert "km=2500: 100.0%" in capsys.readouterr().out


def test_bench_runs_arms_by_seeds_and_reuses_cells(fake: FakeGeoLLM, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "bench"
    cmd = ["bench", "geo", "--arms", "nn,one-rag", "--seeds", "2", "--limit", "6", "--out", str(out),
           "--store", str(tmp_path / "store.duckdb"), *FAST]
    assert main(cmd) == 0
    md = (out / "results.md").read_text()
    assert "| nn | 2 |" in md and "| one-rag | 2 |" in md and "Published on IM2GPS3k" in md
    page = (out / "error_map.html").read_text()
    assert "nn (seed 1)" in page and "one-rag (seed 0)" in page and "error (km)" in page
    calls = fake.calls
    assert main(cmd) == 0 and fake.calls == calls  # finished cells are reused


@pytest.mark.parametrize(("args", "words"), [
    (["--arm", "g4"], ("unknown arm 'g4'", "g3")),
    (["--set", "geo.sample=3"], ("unknown option 'geo.sample'",)),
    (["--limit", "-1"], ("--limit",)),
    (["--dataset", "im2gps"], ("unknown dataset 'im2gps'",)),
])
def test_bad_options_are_one_line_errors(fake: FakeGeoLLM, tmp_path: Path, capsys, args: list[str],  # noqa: ANN001
                                         words: tuple[str, ...]) -> None:
    assert main(["run", "geo", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
