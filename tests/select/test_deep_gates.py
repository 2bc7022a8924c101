"""Gate selectors (AutoField, AdaFS, OptFS, LPFS) on planted-truth data, their schedules and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.errors import ConfigError
from recwise.select import FieldSelector, get_selector
from recwise.select.autofield import AutoFieldConfig, AutoFieldGate
from recwise.select.lpfs import LPFSConfig, LPFSGate, eps_after, lpfs_gate
from recwise.select.optfs import OptFSConfig

from ._deep_helpers import FAST, planted


def fit(name: str, options: dict | None = None, seed: int = 0, data_seed: int = 0, backbone: str = "mlp",
        n: int = 20000) -> FieldSelector:
    p = planted(data_seed, n)
    selector = get_selector(name, options or {}, train=FAST, seed=seed, backbone=backbone)
    return selector.fit(p.part("train"), p.part("val"))


def scores_by_field(sel: FieldSelector) -> dict[str, float]:
    return dict(zip(sel.fields_, sel.scores_))


# ------------------------------------------------------------------------------------------ planted truth


@pytest.mark.parametrize("name", ["lpfs", "optfs"])
def test_lpfs_and_optfs_rank_the_planted_fields_first(name: str) -> None:
    p = planted(0)
    sel = fit(name)
    assert set(sel.ranking_[: len(p.signal)]) == set(p.signal)
    assert sel.scores_.shape == (len(sel.fields_),) and np.all(np.isfinite(sel.scores_))


def test_autofield_default_separates_signal_from_noise_and_faster_updates_recover_them() -> None:
    p = planted(0)
    default = fit("autofield")
    s = scores_by_field(default)
    # released update_frequency=10: few gate updates in a short search, so the four planted fields are not
    # all on top; the best field is planted and planted fields score higher on average
    assert default.ranking_[0] in p.signal
    assert np.mean([s[f] for f in p.signal]) > np.mean([s[f] for f in p.noise])
    frequent = fit("autofield", {"update_frequency": 2})
    assert set(frequent.ranking_[: len(p.signal)]) == set(p.signal)


def test_adafs_weights_are_per_row_distributions_and_its_model_learns() -> None:
    p = planted(0)
    sel = fit("adafs")
    assert sel.granularity == "sample"
    w = sel.sample_weights(p.part("test"))
    assert w.shape == (len(p.part("test")), len(sel.fields_))
    assert np.all(w >= 0) and np.allclose(w.sum(1), 1.0, atol=1e-5)
    assert w.std(axis=0).max() > 1e-3  # weights differ from row to row
    np.testing.assert_allclose(sel.scores_, sel.sample_weights(p.part("val")).mean(0), rtol=1e-6)
    assert sel.evaluate(p.part("test"))["auc"] > 0.8  # its own protocol: all fields, per-row weights


def test_optfs_value_mask_shapes_and_field_scores() -> None:
    p = planted(0)
    sel = fit("optfs")
    schema = p.part("train").schema
    assert sel.granularity == "value"
    for f in sel.fields_:
        size = schema[f].vocab_size if schema[f].kind.value == "sparse" else 1
        assert sel.value_mask_[f].shape == (size,) and sel.value_mask_[f].dtype == bool
    assert 0.0 <= sel.kept_ratio_ <= 1.0
    assert np.all((sel.kept_fraction_ >= 0) & (sel.kept_fraction_ <= 1))
    # the kept fraction orders fields; the tie-break stays below the next possible kept fraction
    n_val = len(p.part("val"))
    assert np.all(sel.scores_ - sel.kept_fraction_ < 0.5 / n_val + 1e-12)
    # a search that keeps the same share in every field says its order is only the tie-break
    assert (sel.degenerate_ != "") == (np.ptp(sel.kept_fraction_) == 0)
    # temperature: multiplied by gamma^(1/(pretrain_epoch-1)) once per epoch run
    cfg = OptFSConfig()
    assert sel.temp_ == pytest.approx(cfg.gamma ** (sel.search_.epochs_run / (cfg.pretrain_epoch - 1)), rel=1e-9)
    res = sel.retrain_with_mask(p.part("train"), p.part("val"), p.part("test"))
    assert res["test_auc"] > 0.8 and res["kept_ratio"] == sel.kept_ratio_


def test_optfs_regulariser_drops_noise_values_first() -> None:
    # released init 0.5 needs ~500 Adam steps of lr 1e-3 to reach 0; start nearer 0 for a short search
    p = planted(0)
    sel = fit("optfs", {"reg_weight": 1e-3, "init_weight": 0.05})
    assert sel.kept_ratio_ < 0.5
    kept = dict(zip(sel.fields_, sel.kept_fraction_))
    assert min(kept[f] for f in p.signal) > 0.8
    assert np.mean([kept[f] for f in p.noise]) < 0.5
    assert sel.degenerate_ == ""  # the kept fractions separate the fields


# ------------------------------------------------------------------------------------------ schedules


def test_autofield_tau_schedule_is_linear_with_a_floor() -> None:
    gate = AutoFieldGate(3, AutoFieldConfig())
    emb = torch.ones(4, 3, 2)
    for _ in range(10):
        gate(emb, {})
    assert gate.tau == pytest.approx(1.0 - 10 * 5e-5)
    gate.tau = 0.01 + 1e-5
    gate(emb, {})
    assert gate.tau == pytest.approx(0.01 - 4e-5)
    gate(emb, {})
    assert gate.tau == pytest.approx(0.01 - 4e-5)  # below the floor: no more decay
    gate.search = False
    assert torch.equal(gate(emb, {}), emb)  # removed at retrain


def test_autofield_search_counts_every_forward_and_updates_gates_only_on_validation_batches() -> None:
    p = planted(0)
    sel = fit("autofield", {"update_frequency": 1000})  # one gate update per epoch (batch 0)
    n_train = -(-len(p.part("train")) // FAST.batch_size)
    epochs = sel.search_.epochs_run
    forwards = epochs * (n_train + 1 + 1)  # training batches + one DARTS batch + one evaluation batch
    assert sel.model_.gate.forwards == forwards
    assert sel.tau_ == pytest.approx(1.0 - forwards * 5e-5, abs=1e-9)
    moved = (sel.model_.gate.logits.detach() - 0.5).abs().max().item()
    assert 0 < moved <= epochs * FAST.lr * 1.05  # at most one Adam step of size ~lr per update


def test_lpfs_gate_function_eps_schedule_and_proximal_step() -> None:
    x = torch.tensor([-2.0, -1e-6, 0.0, 0.5, 3.0])
    g = lpfs_gate(x, 0.1)
    expected = torch.sign(x) * x**2 / (x**2 + 0.1) + 10 * 0.1**0.5 * torch.atan(x)
    torch.testing.assert_close(g, expected)
    gate = LPFSGate(2, LPFSConfig())
    emb = torch.ones(1, 2, 1)
    for step in (0, 1, 99, 100, 150, 200):
        gate.step = step
        gate(emb, {})
    assert gate.eps == pytest.approx(eps_after(3))  # steps 0, 100, 200
    gate.x.data = torch.tensor([5e-6, -0.5])
    gate.proximal(lr=1e-3)  # threshold 1e-5
    torch.testing.assert_close(gate.x.data, torch.tensor([0.0, -0.5 + 1e-5]))


def test_lpfs_search_eps_counts_training_and_evaluation_passes() -> None:
    p = planted(0)
    sel = fit("lpfs")
    n_train = -(-len(p.part("train")) // FAST.batch_size)
    per_epoch = len(range(0, n_train, 100)) + 1  # training indices 0, 100, ... and evaluation batch 0
    assert sel.eps_ == pytest.approx(eps_after(per_epoch * sel.search_.epochs_run), rel=1e-12)


# ------------------------------------------------------------------------------------------ contract


def test_same_seed_same_scores_other_seed_other_scores() -> None:
    a, b = fit("autofield", seed=3), fit("autofield", seed=3)
    np.testing.assert_array_equal(a.scores_, b.scores_)
    assert not np.array_equal(a.scores_, fit("autofield", seed=4).scores_)


@pytest.mark.parametrize("backbone", ["widedeep", "deepfm", "dcn", "fibinet"])
def test_gates_reach_every_backbone(backbone: str) -> None:
    sel = fit("lpfs", backbone=backbone, n=6000)
    assert len(set(sel.scores_.tolist())) > 1  # the gates were trained through the backbone's head


def test_gate_selectors_need_a_validation_table_and_check_options() -> None:
    p = planted(0)
    with pytest.raises(ConfigError, match="validation"):
        get_selector("lpfs", train=FAST).fit(p.part("train"))
    with pytest.raises(ConfigError, match="update_frequncy|update_frequency"):
        get_selector("autofield", {"update_frequncy": 3})
    with pytest.raises(ConfigError, match="pretrain_epoch"):
        get_selector("optfs", {"pretrain_epoch": 1})
