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
    (["--dataset", "im2gps"], ("unknown dataset 'im2gps'", "im2gps3k")),
])
def test_bad_options_are_one_line_errors(fake: FakeGeoLLM, tmp_path: Path, capsys, args: list[str],  # noqa: ANN001
                                         words: tuple[str, ...]) -> None:
    assert main(["run", "geo", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err


def _image_data(tmp_path: Path) -> dict[str, Path]:
    """A tiny IM2GPS3k-style folder and MP16-Pro database of painted images, and an untrained tower saved
    as a transformers folder (no image weights are reachable offline: this checks the mechanics)."""
    from PIL import Image

    from recwise.models.geo.image import ImageTower

    split = planted_split(per_region=6, test_per_region=1)
    colours = {"zor": (200, 0, 0), "kal": (0, 200, 0), "mib": (0, 0, 200), "tup": (200, 200, 0),
               "vex": (0, 200, 200), "quo": (200, 0, 200)}
    bench, db = tmp_path / "im2gps3k", tmp_path / "mp16"
    (bench / "images").mkdir(parents=True)
    (db / "images").mkdir(parents=True)
    lines = ["IMG_ID,LAT,LON"]
    for i, (name, (lat, lon)) in enumerate(zip(split.queries.texts, split.queries.latlon)):
        Image.new("RGB", (40, 40), colours[name[:3].lower()]).save(bench / "images" / f"q{i}.png")
        lines.append(f"q{i}.png,{lat:.5f},{lon:.5f}")
    (bench / "im2gps3k_places365.csv").write_text("\n".join(lines) + "\n")
    lines = ["IMG_ID,LAT,LON,city,state,country"]
    for i, (name, (lat, lon), text) in enumerate(zip(split.gallery.names, split.gallery.latlon, split.gallery.texts)):
        Image.new("RGB", (40, 40), colours[name[:3].lower()]).save(db / "images" / f"g{i}.png")
        lines.append(f"g{i}.png,{lat:.5f},{lon:.5f},{text}")
    (db / "MP16_Pro_filtered.csv").write_text("\n".join(lines) + "\n")
    tower = tmp_path / "tower"
    ImageTower.untrained().model.save_pretrained(str(tower))
    return {"bench": bench, "db": db / "MP16_Pro_filtered.csv", "tower": tower}


def test_image_dataset_runs_from_the_command_line(fake: FakeGeoLLM, tmp_path: Path) -> None:
    d = _image_data(tmp_path)
    out = tmp_path / "run"
    args = ["run", "geo", "--dataset", "im2gps3k", "--data-dir", str(d["bench"]), "--set", f"image_tower={d['tower']}",
            "--set", f"database={d['db']}", "--arm", "g3", "--seed", "0", "--out", str(out), "--set", "samples=1",
            "--set", "candidates=1", "--set", "rag_ks=2", "--set", "top_k=3", "--set", "attempts=1",
            "--set", "align.epochs=3", "--set", "align.lr=3e-3", "--quiet"]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["dataset"] for r in rows} == {"im2gps3k"}
    preds = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(preds) == 6 and preds[0]["query"].endswith("q0.png")
    assert fake.images == fake.calls == 2 * 6  # zero-shot + one RAG prompt per query, each with its image
    acc = {r["segment"]: float(r["value"]) for r in rows if r["metric"] == "accuracy"}
    assert acc["km=2500"] == 1.0  # same-colour database images are the nearest, even through a random tower


@pytest.mark.parametrize(("case", "words"), [
    ("no-tower", ("needs --set geo.image_tower",)),
    ("no-dir", ("needs --data-dir",)),
    ("geonames", ("'geo.database' is for the image datasets",)),
    ("missing-query-image", ("im2gps3k_places365.csv:3: image", "q1.png not found")),
    ("missing-db-image", ("MP16_Pro_filtered.csv:2: image", "g0.png not found")),
    ("lat", ("im2gps3k_places365.csv:2: LAT = 91.0 is outside [-90, 90]",)),
    ("no-coords", ("im2gps3k_places365.csv:1: no column LAT, LON",)),
])
def test_image_dataset_bad_input_is_one_line_exit_2(fake: FakeGeoLLM, tmp_path: Path, capsys,  # noqa: ANN001
                                                    case: str, words: tuple[str, ...]) -> None:
    d = _image_data(tmp_path)
    capsys.readouterr()  # the tower's save progress
    csv_path = d["bench"] / "im2gps3k_places365.csv"
    args = ["--dataset", "im2gps3k", "--data-dir", str(d["bench"]), "--set", f"image_tower={d['tower']}",
            "--set", f"database={d['db']}"]
    if case == "no-tower":
        args = args[:4] + args[6:]
    elif case == "no-dir":
        args = args[:2] + args[4:]
    elif case == "geonames":
        args = ["--dataset", "geonames", "--set", f"database={d['db']}"]
    elif case == "missing-query-image":
        (d["bench"] / "images" / "q1.png").unlink()
    elif case == "missing-db-image":
        (d["db"].parent / "images" / "g0.png").unlink()
    elif case == "lat":
        lines = csv_path.read_text().splitlines()
        lines[1] = "q0.png,91.0,10.0"
        csv_path.write_text("\n".join(lines) + "\n")
    elif case == "no-coords":
        csv_path.write_text("IMG_ID,city\nq0.png,Paris\n")
    assert main(["run", "geo", "--arm", "nn", "--out", str(tmp_path / "x"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
