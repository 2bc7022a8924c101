from __future__ import annotations

import numpy as np

from recwise.results import ResultRow
from recwise.tasks.selection.report import near_noise, summary

FIELDS = [f"f{i}" for i in range(10)]


def _ranking(method: str, backbone: str | None, seed: int, scores: list[float]) -> dict:
    return {"method": method, "backbone": backbone, "seed": seed, "fields": FIELDS, "scores": scores}


def test_tied_scores_are_named_for_every_backbone_of_a_shallow_method() -> None:
    noise = near_noise([_ranking("optfs", None, 0, [1.0] * 10)], backbones=["dcn", "deepfm"])
    assert set(noise) == {"dcn+optfs", "deepfm+optfs"}
    assert noise["dcn+optfs"].startswith("tied")


def test_a_ranking_its_selector_calls_degenerate_is_named_with_the_selectors_reason() -> None:
    r = _ranking("optfs", "dcn", 0, list(np.linspace(1.00002, 1.00001, 10)))  # distinct, but only a tie-break
    assert near_noise([r]) == {}
    noise = near_noise([{**r, "degenerate": "every field keeps the same share of its values"}])
    assert noise == {"dcn+optfs": "degenerate: every field keeps the same share of its values"}


def test_seeds_that_disagree_are_noise_and_seeds_that_agree_are_not() -> None:
    rng = np.random.default_rng(0)
    base = np.linspace(0.5, 0.05, 10)  # a real ordering: f0 best
    agree = [_ranking("gbdt", "dcn", s, list(base + rng.normal(0, 0.01, 10))) for s in range(3)]
    shuffled = [_ranking("adafs", "dcn", s, list(rng.permutation(base))) for s in range(3)]
    noise = near_noise(agree + shuffled)
    assert "dcn+gbdt" not in noise
    assert noise["dcn+adafs"].startswith("seed noise")
    # one seed alone cannot show seed noise (untied scores pass)
    assert near_noise(shuffled[:1]) == {}


def _rows(model: str, aukc: float, k_auc: dict[int, float]) -> list[ResultRow]:
    rows = [ResultRow("selection", "d", model, 0, "test", "aukc", "auc", aukc)]
    rows += [ResultRow("selection", "d", model, 0, "test", f"k={k}", "auc", v) for k, v in k_auc.items()]
    return rows


def test_summary_names_near_noise_instead_of_scoring_it_and_skips_it_in_the_top_half_check() -> None:
    rows = _rows("dcn+optfs", 0.80, {1: 0.8, 2: 0.8, 4: 0.8}) + _rows("dcn+gbdt", 0.70, {1: 0.6, 2: 0.7, 4: 0.75})
    text = summary(rows, [1, 2, 4], "d", noise={"dcn+optfs": "tied: all 4 fields"})
    assert "| optfs | near noise |" in text and "0.8000 ±" not in text.split("## test AUC")[0]
    assert "- dcn+optfs: tied: all 4 fields" in text
    # optfs has the higher AUKC but is excluded: the check is about gbdt
    assert "best method by AUKC gbdt" in text
    assert "best method by AUKC optfs" in summary(rows, [1, 2, 4], "d")
