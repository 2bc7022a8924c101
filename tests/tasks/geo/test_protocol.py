"""The G3 protocol on a planted split: arms, candidate counts, verification, failures, zero re-run calls."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from recwise.errors import ConfigError
from recwise.llm import Generator, LLMCache
from recwise.models.geo.align import AlignConfig
from recwise.models.geo.location import default_weights_path
from recwise.tasks.geo.protocol import GeoConfig, arm_plan, check_options, prepare, run
from tests.tasks.geo._fake import FakeGeoLLM, TrigramEncoder, planted_split

pytestmark = pytest.mark.skipif(not default_weights_path().is_file(),
                                reason="GeoCLIP weights not extracted (scripts/setup.sh)")

CFG = GeoConfig(samples=2, candidates=2, rag_ks=(3, 5), top_k=5, attempts=2)
ALIGN = AlignConfig(lr=3e-3, epochs=5, batch_size=64)


@pytest.fixture(scope="module")
def prepared():  # noqa: ANN201
    return prepare(planted_split(), TrigramEncoder())


def _acc(rows: list, seg: str) -> float:
    return next(r.value for r in rows if r.segment == seg and r.metric == "accuracy")


def _all(rows: list, metric: str) -> float:
    return next(r.value for r in rows if r.segment == "all" and r.metric == metric)


def test_nn_finds_the_planted_region(prepared, tmp_path: Path) -> None:  # noqa: ANN001
    rows = run(prepared, CFG, ALIGN, arm="nn", seed=0, options={}, out_dir=tmp_path)
    assert _acc(rows, "km=2500") == 1.0  # every query's top-1 is in its own region
    assert [r.segment for r in rows if r.metric == "accuracy"] == ["km=1", "km=25", "km=200", "km=750", "km=2500"]
    assert _all(rows, "llm_calls") == 0 and {r.model for r in rows} == {"nn"}
    preds = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert len(preds) == 30 and {p["candidates"] for p in preds} == {"1"}
    assert set(preds[0]) == {"query_id", "query", "true_lat", "true_lon", "pred_lat", "pred_lon", "candidates",
                             "error_km"}
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["arm"] == "nn" and len(info["align_loss"]) == ALIGN.epochs


def test_g3_counts_failures_and_a_rerun_makes_no_model_call(prepared, tmp_path: Path) -> None:  # noqa: ANN001
    backend = FakeGeoLLM()
    gen = Generator(backend, LLMCache(str(tmp_path / "cache.sqlite")))
    rows = run(prepared, CFG, ALIGN, arm="g3", seed=0, options={}, generator=gen, out_dir=tmp_path / "a")
    n_q = 30
    # 3 prompts (zero-shot + RAG 3, 5) x 2 samples per query; zero-shot never parses (2 attempts each)
    assert _all(rows, "llm_answers") == 3 * 2 * n_q
    assert _all(rows, "parse_failed") == 2 * n_q
    assert _all(rows, "parse_failure_rate") == pytest.approx(1 / 3)
    assert backend.calls == _all(rows, "llm_calls") == 3 * 2 * n_q + 2 * n_q  # + one retry per zero-shot answer
    # big batches: every (prompt, sample) row in one generator call (sent to the backend in calls of
    # save_every rows, each cached before the next), then one retry call per sample index
    first = 3 * 2 * n_q
    assert backend.batches == [gen.save_every] * (first // gen.save_every) + [first % gen.save_every, n_q, n_q]
    # candidates: 2 RAG prompts x 2 samples (the zero-shot failures dropped) + the retrieval top-1
    preds = list(csv.DictReader((tmp_path / "a" / "predictions.csv").open()))
    assert {p["candidates"] for p in preds} == {"5"}
    assert _acc(rows, "km=2500") == 1.0
    calls = backend.calls
    again = run(prepared, CFG, ALIGN, arm="g3", seed=0, options={}, generator=gen)
    assert backend.calls == calls and _all(again, "llm_calls") == 0
    assert _all(rows, "llm_cache_hits") == 0 and _all(again, "llm_cache_hits") == calls
    assert [r.value for r in again if r.metric == "accuracy"] == [r.value for r in rows if r.metric == "accuracy"]
    # zero-shot only: every answer fails, so every prediction is (0, 0), as released
    zs = run(prepared, CFG, ALIGN, arm="zero-shot", seed=0, options={}, generator=gen, out_dir=tmp_path / "z")
    assert backend.calls == calls and _acc(zs, "km=2500") == 0.0
    zpred = list(csv.DictReader((tmp_path / "z" / "predictions.csv").open()))
    assert {(p["pred_lat"], p["pred_lon"]) for p in zpred} == {("0.000000", "0.000000")}
    # failed=zero keeps the failures as (0, 0) candidates
    zero = run(prepared, GeoConfig(samples=2, candidates=2, rag_ks=(3, 5), top_k=5, attempts=2, failed="zero"),
               ALIGN, arm="g3", seed=0, options={}, generator=gen, out_dir=tmp_path / "f")
    assert {p["candidates"] for p in csv.DictReader((tmp_path / "f" / "predictions.csv").open())} == {"7"}
    assert _acc(zero, "km=2500") >= 0.9  # the verifier prefers the region over (0, 0)


def test_arms_and_options() -> None:
    assert arm_plan("one-rag", CFG).rag_ks == (5,) and not arm_plan("one-rag", CFG).zero_shot
    assert not arm_plan("no-reverse", CFG).reverse and arm_plan("equal-earth", CFG).projection == "equal-earth"
    assert arm_plan("no-verify", CFG).select == "medoid"
    with pytest.raises(ConfigError, match="unknown arm 'g4'.*g3"):
        arm_plan("g4", CFG)
    with pytest.raises(ConfigError, match="unknown option 'geo.sample'"):
        check_options({"geo": {"sample": "3"}})
    with pytest.raises(ConfigError, match="geo.candidates"):
        GeoConfig(samples=2, candidates=3)
    with pytest.raises(ConfigError, match="geo.rag_ks"):
        check_options({"geo": {"rag_ks": "5,0"}})
    with pytest.raises(ConfigError, match="align.lr"):
        check_options({"align": {"lr": "-1"}})
    with pytest.raises(ConfigError, match="llm"):
        check_options({"llm": {"modle": "x"}})
    cfg, align = check_options({"geo": {"rag_ks": "5,10", "failed": "zero"}, "align": {"epochs": "2"}})
    assert cfg.rag_ks == (5, 10) and cfg.failed == "zero" and align.epochs == 2


def test_medoid_arm_picks_the_candidate_nearest_the_others(prepared) -> None:  # noqa: ANN001
    from recwise.tasks.geo.protocol import _medoid

    pts = np.array([[0.0, 0.0], [0.1, 0.1], [0.2, 0.0], [60.0, 100.0]])
    assert _medoid(pts) == 1


def test_image_queries_send_the_image_and_run_through_the_tower(tmp_path: Path) -> None:
    from PIL import Image

    from recwise.data.geo import GeoGallery, GeoQueries, GeoSplit
    from recwise.models.geo.image import ImageTower

    split = planted_split(per_region=6, test_per_region=1)
    colours = {"zor": (200, 0, 0), "kal": (0, 200, 0), "mib": (0, 0, 200), "tup": (200, 200, 0),
               "vex": (0, 200, 200), "quo": (200, 0, 200)}

    def paint(names: list[str], prefix: str) -> list[str]:
        out = []
        for i, n in enumerate(names):
            p = tmp_path / f"{prefix}{i}.png"
            Image.new("RGB", (40, 40), colours[n[:3].lower()]).save(p)
            out.append(str(p))
        return out

    g, q = split.gallery, split.queries
    qpaths = paint(q.texts, "q")
    image_split = GeoSplit(GeoGallery(g.ids, paint(g.names, "g"), g.latlon, g.texts),
                           GeoQueries(q.ids, qpaths, q.latlon, [Path(p) for p in qpaths]), "images")
    prepared = prepare(image_split, TrigramEncoder(), query_encoder=ImageTower.untrained())
    backend = FakeGeoLLM()
    gen = Generator(backend, LLMCache(str(tmp_path / "cache.sqlite")))
    rows = run(prepared, GeoConfig(samples=1, candidates=1, rag_ks=(2,), top_k=3, attempts=1), ALIGN, arm="g3",
               seed=0, options={}, generator=gen)
    assert backend.images == backend.calls == 2 * len(q)  # every prompt carried its image
    assert _acc(rows, "km=2500") == 1.0  # same-colour gallery images are the nearest ones


def test_trained_location_encoder_is_a_copy_and_frozen_leaves_it(prepared, tmp_path: Path) -> None:  # noqa: ANN001
    import torch

    shared = prepared.encoder_for("mercator")
    snapshot = {k: v.clone() for k, v in shared.state_dict().items()}
    trained = run(prepared, CFG, ALIGN, arm="nn", seed=0, options={}, out_dir=tmp_path / "t")
    assert ALIGN.location == "trained"
    frozen = run(prepared, CFG, AlignConfig(lr=3e-3, epochs=5, batch_size=64, location="frozen"), arm="nn", seed=0,
                 options={}, out_dir=tmp_path / "f")
    # the encoder every run starts from is never trained in place (runs and cells share it)
    assert all(torch.equal(snapshot[k], v) for k, v in shared.state_dict().items())
    assert _acc(trained, "km=2500") == _acc(frozen, "km=2500") == 1.0
    info_t = json.loads((tmp_path / "t" / "run.json").read_text())
    info_f = json.loads((tmp_path / "f" / "run.json").read_text())
    assert info_t["align_config"]["location"] == "trained" and info_f["align_config"]["location"] == "frozen"
    assert info_t["align_loss"] != info_f["align_loss"]  # the trained encoder changes the GPS loss


def test_arms_of_one_seed_share_one_alignment(tmp_path: Path) -> None:
    prep = prepare(planted_split(per_region=12, test_per_region=2), TrigramEncoder())
    frozen = AlignConfig(lr=3e-3, epochs=2, batch_size=32, location="frozen")
    a = run(prep, CFG, frozen, arm="nn", seed=0, options={}, out_dir=tmp_path / "a")
    b = run(prep, CFG, frozen, arm="one-rag", seed=0, options={}, generator=Generator(FakeGeoLLM()),
            out_dir=tmp_path / "b")
    c = run(prep, CFG, frozen, arm="nn", seed=1, options={})
    e = run(prep, CFG, frozen, arm="equal-earth", seed=0, options={}, generator=Generator(FakeGeoLLM()))
    assert [_all(r, "align_reused") for r in (a, b, c, e)] == [0.0, 1.0, 0.0, 0.0]
    assert len(prep.alignments) == 3  # (0, mercator), (1, mercator), (0, equal-earth)
    info_a, info_b = (json.loads((tmp_path / d / "run.json").read_text()) for d in "ab")
    assert info_a["align_loss"] == info_b["align_loss"] and info_b["align_reused"] is True


def test_a_seeds_alignment_does_not_depend_on_the_cells_before_it(tmp_path: Path) -> None:
    """A bench's second cell (encoder already loaded) trains the same heads as a run of that seed alone."""
    from recwise.tasks.geo.protocol import _align

    align = AlignConfig(lr=3e-3, epochs=1, batch_size=64, location="frozen")
    alone = prepare(planted_split(), TrigramEncoder())
    after = prepare(planted_split(), TrigramEncoder())
    _align(after, "mercator", align, 0, False)  # the first cell loads the encoder
    h_alone = _align(alone, "mercator", align, 1, False)[2]
    h_after = _align(after, "mercator", align, 1, False)[2]
    assert h_alone["loss"] == h_after["loss"]
