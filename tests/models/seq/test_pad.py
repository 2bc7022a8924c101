"""PAD's pieces: MK-MMD, the per-bin expert gates, the phase-2 copy, negatives, losses that fall."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.data.sequence import seq_schema
from recwise.errors import ConfigError
from recwise.models.seq.pad import (
    PADConfig,
    PADPhase1,
    PADPhase2,
    PADPhase3,
    gate_init,
    gaussian_kernel,
    info_nce,
    mk_mmd,
    mk_mmd_reference,
    sample_negatives,
)
from recwise.tasks.pad.protocol import _train_windows, train_keys

TINY = PADConfig(hidden_size=16, n_layers=1, n_heads=1, inner_size=32, max_len=6, text_layers=1, mmd_group=4)


def _tllib_kernels(zs: torch.Tensor, zt: torch.Tensor, alphas) -> tuple[int, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """n, tllib's summed Gaussian kernel matrix over [zs; zt] (float64), and a zero index matrix."""
    x = torch.cat([zs, zt]).double()
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    k = sum(torch.exp(-d2 / (2 * a * d2.mean())) for a in alphas)
    return len(zs), k, torch.zeros(2 * len(zs), 2 * len(zs), dtype=torch.float64)


def _tllib_reference(zs: torch.Tensor, zt: torch.Tensor, alphas) -> float:  # noqa: ANN001
    """tllib's MultipleKernelMaximumMeanDiscrepancy(linear=False) written out with its index matrix."""
    n, k, index = _tllib_kernels(zs, zt, alphas)
    for i in range(n):
        for j in range(n):
            if i != j:
                index[i, j] = index[i + n, j + n] = 1.0 / (n * (n - 1))
            index[i, j + n] = index[i + n, j] = -1.0 / (n * n)
    return float((k * index).sum() + 2.0 / (n - 1))


def test_gaussian_kernel_bandwidth_is_alpha_times_mean_squared_distance() -> None:
    torch.manual_seed(0)
    x = torch.randn(12, 5)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    for alpha in (0.125, 1.0, 2.0):
        ref = torch.exp(-d2 / (2 * alpha * d2.mean()))
        torch.testing.assert_close(gaussian_kernel(x, alpha), ref, atol=1e-5, rtol=1e-5)
    # the bandwidth follows the batch: rescaling the data leaves the kernel unchanged
    torch.testing.assert_close(gaussian_kernel(10 * x, 0.5), gaussian_kernel(x, 0.5), atol=1e-5, rtol=1e-5)


def test_mk_mmd_matches_tllib_and_is_zero_for_identical_samples() -> None:
    torch.manual_seed(1)
    zs, zt = torch.randn(9, 4), torch.randn(9, 4) + 0.3
    alphas = [2.0**k for k in range(-3, 2)]
    assert float(mk_mmd(zs, zt)) == pytest.approx(_tllib_reference(zs, zt, alphas), abs=1e-5)
    assert float(mk_mmd(zs, zs, estimator="biased")) == pytest.approx(0.0, abs=1e-6)
    # tllib's estimator: unbiased within-sample terms, so identical samples give 2S/(n^2 (n-1)) - 10/n + 2/(n-1)
    assert float(mk_mmd(zs, zs)) == pytest.approx(_tllib_reference(zs, zs, alphas), abs=1e-5)


@pytest.mark.parametrize("estimator", ["tllib", "biased"])
def test_mk_mmd_grows_with_a_mean_shift(estimator: str) -> None:
    torch.manual_seed(2)
    a, b = torch.randn(200, 8), torch.randn(200, 8)
    vals = [float(mk_mmd(a, b + s, estimator=estimator)) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert all(x < y for x, y in zip(vals, vals[1:])), vals
    assert abs(vals[0]) < 0.05 and vals[-1] > 1.0  # same distribution: about zero; far apart: large


def test_info_nce_prefers_matching_pairs() -> None:
    torch.manual_seed(3)
    q = torch.randn(32, 8)
    assert float(info_nce(q, q + 0.01 * torch.randn(32, 8))) < float(info_nce(q, torch.randn(32, 8)))


def test_gate_init_as_released_and_weights_per_candidate_bin(planted_text) -> None:  # noqa: ANN001
    g = gate_init(10, -4.0)
    np.testing.assert_allclose(g[0].numpy(), np.linspace(1, 0, 11), atol=1e-7)
    np.testing.assert_allclose(g[1].numpy(), np.linspace(-4, -5, 11), atol=1e-7)
    np.testing.assert_allclose(g[2].numpy(), np.linspace(0, 1, 11), atol=1e-7)
    seqs, texts = planted_text
    V = seqs.n_items + 1
    bins = torch.tensor([0] + [1 + (i % 10) for i in range(V - 1)])
    m = PADPhase3(seq_schema(seqs.n_items), TINY, torch.randn(V, 8), bins)
    w = m.weights(torch.arange(V))
    torch.testing.assert_close(w.sum(0), torch.ones(V))
    hot, cold = int(torch.nonzero(bins == 1)[0]), int(torch.nonzero(bins == 10)[0])
    assert w[0, hot] > w[2, hot] and w[2, cold] > w[0, cold]  # ID leads on popular items, text on cold ones
    assert float(w[1].detach().max()) < 0.02  # aligned expert starts near sigmoid(-4) / (sum)
    same = torch.nonzero(bins == 3).ravel()
    torch.testing.assert_close(w[:, same[0]], w[:, same[1]])  # the weight depends on the bin only
    # moving one bin's gate changes the mixed scores of that bin's items only
    batch = {"item_seq": torch.tensor([[0, 0, 1, 2, 3, 4]]), "item_len": torch.tensor([4])}
    m.eval()
    before = m(batch)
    with torch.no_grad():
        m.gate[:, 3] += torch.tensor([2.0, 0.0, -2.0])
    changed = (m(batch) - before).abs()[0] > 1e-7
    assert set(torch.nonzero(changed).ravel().tolist()) <= set(same.tolist()) and changed.any()


def test_phase2_tower_starts_equal_to_phase1(planted_text) -> None:  # noqa: ANN001
    seqs, _ = planted_text
    schema, text = seq_schema(seqs.n_items), torch.randn(seqs.n_items + 1, 8)
    torch.manual_seed(0)
    p1 = PADPhase1(schema, TINY)
    p2 = PADPhase2(schema, TINY, text)
    assert not torch.equal(p2.aligned.tower.item_embedding.weight, p1.id_tower.item_embedding.weight)
    p2.copy_from(p1)
    s1, s2 = p1.id_tower.state_dict(), p2.aligned.tower.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    p1.eval(), p2.eval()
    seq = torch.tensor([[0, 0, 3, 5, 7, 9], [1, 2, 3, 4, 5, 6]])
    x = p1.id_tower.item_embedding(seq)
    torch.testing.assert_close(p2.aligned.tower(x, seq), p1.id_tower(x, seq))
    with torch.no_grad():  # a copy, not shared weights
        p2.aligned.tower.item_embedding.weight.add_(1.0)
    assert not torch.equal(p2.aligned.tower.item_embedding.weight, p1.id_tower.item_embedding.weight)
    p3 = PADPhase3(schema, TINY, text, torch.zeros(seqs.n_items + 1, dtype=torch.long))
    p3.copy_from(p1, p2)
    assert torch.equal(p3.id_tower.item_embedding.weight, p1.id_tower.item_embedding.weight)
    assert torch.equal(p3.aligned.tower.item_embedding.weight, p2.aligned.tower.item_embedding.weight)


def test_negatives_avoid_the_users_items(planted_text) -> None:  # noqa: ANN001
    seqs, _ = planted_text
    keys = train_keys(seqs)
    ex = _train_windows(seqs, 6, "all")
    torch.manual_seed(0)
    neg = sample_negatives(ex["target_seq"], ex["user"], keys, seqs.n_items)
    assert bool(((neg == 0) == (ex["target_seq"] == 0)).all())
    k = ex["user"][:, None] * (seqs.n_items + 1) + neg
    assert not bool(torch.isin(k[neg > 0], keys).any())
    assert len(torch.unique(neg[neg > 0])) > 0.8 * seqs.n_items


def test_latest_windows_keep_one_left_padded_window_per_user(planted_text) -> None:  # noqa: ANN001
    seqs, _ = planted_text
    ex = _train_windows(seqs, 6, "latest")
    assert len(ex["user"]) == seqs.n_users and len(torch.unique(ex["user"])) == seqs.n_users
    u = int(ex["user"][0])
    train = seqs.user_items(u)[:-2]
    assert ex["target_seq"][0].tolist() == train[-6:].tolist() and ex["item_seq"][0].tolist() == train[-7:-1].tolist()


@pytest.mark.parametrize("phase", [1, 2, 3])
def test_loss_falls(planted_text, phase: int) -> None:  # noqa: ANN001
    seqs, _ = planted_text
    schema = seq_schema(seqs.n_items)
    text = torch.randn(seqs.n_items + 1, 8)
    text[0] = 0
    torch.manual_seed(0)
    model = {1: lambda: PADPhase1(schema, TINY), 2: lambda: PADPhase2(schema, TINY, text),
             3: lambda: PADPhase3(schema, TINY, text, torch.randint(1, 11, (seqs.n_items + 1,)))}[phase]()
    model.set_seen(train_keys(seqs))
    batch = {k: v[:64] for k, v in _train_windows(seqs, 6, "latest").items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(1)
    with torch.no_grad():
        first = float(model.loss(batch))
    for _ in range(30):
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    with torch.no_grad():
        assert float(model.loss(batch)) < 0.7 * first


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="hidden_size"):
        PADConfig(hidden_size=10, n_heads=3)
    with pytest.raises(ConfigError, match="text"):
        PADPhase2(seq_schema(5), TINY, None)
    with pytest.raises(ConfigError, match="item text matrix"):
        PADPhase2(seq_schema(5), TINY, torch.zeros(3, 4))


def test_cached_item_tables_serve_the_same_scores(planted_text) -> None:  # noqa: ANN001
    seqs, _ = planted_text
    text = torch.randn(seqs.n_items + 1, 8)
    m = PADPhase3(seq_schema(seqs.n_items), TINY, text, torch.randint(1, 11, (seqs.n_items + 1,))).eval()
    batch = {"item_seq": torch.tensor([[0, 0, 1, 2, 3, 4]]), "item_len": torch.tensor([4])}
    plain = m(batch)
    m.cache_tables()
    torch.testing.assert_close(m(batch), plain)
    m.train()  # training invalidates the cache
    with torch.no_grad():
        m.text_proj.net[0].weight.add_(1.0)
    m.eval()
    assert not torch.allclose(m(batch), plain)


@pytest.mark.parametrize("opts", [{"align_loss": "infonce", "align_weight": 0.01}, {"mmd_pad_rows": False},
                                  {"mmd_estimator": "biased"}, {"align_loss": "none"}])
def test_alignment_options_train(planted_text, opts: dict) -> None:  # noqa: ANN001
    seqs, _ = planted_text
    from dataclasses import replace

    cfg = replace(TINY, **opts)
    text = torch.randn(seqs.n_items + 1, 8)
    torch.manual_seed(0)
    p1 = PADPhase1(seq_schema(seqs.n_items), cfg)
    m = PADPhase2(seq_schema(seqs.n_items), cfg, text)
    m.copy_from(p1)
    m.set_seen(train_keys(seqs))
    batch = {k: v[:10] for k, v in _train_windows(seqs, 6, "latest").items()}  # 10 = 2 full groups + 2
    torch.manual_seed(1)
    neg = torch.randint(1, seqs.n_items + 1, batch["target_seq"].shape) * (batch["target_seq"] > 0)
    if cfg.align_loss != "none":
        a = m.align_loss(batch, neg)
        assert a.ndim == 0 and torch.isfinite(a)
        a.backward()
        assert m.aligned.text_proj.net[0].weight.grad is not None
    loss = m.loss(batch)
    assert torch.isfinite(loss)


def test_grouped_mmd_is_the_mean_of_per_group_estimates(planted_text) -> None:  # noqa: ANN001
    seqs, _ = planted_text
    text = torch.randn(seqs.n_items + 1, 8)
    m = PADPhase2(seq_schema(seqs.n_items), TINY, text).eval()  # eval: no dropout, deterministic
    batch = {k: v[:10] for k, v in _train_windows(seqs, 6, "latest").items()}
    neg = torch.randint(1, seqs.n_items + 1, batch["target_seq"].shape) * (batch["target_seq"] > 0)
    window = torch.cat([batch["item_seq"], batch["target_seq"][:, -1:]], 1)
    negs = torch.cat([neg, torch.zeros_like(neg[:, :1])], 1)
    rows = torch.stack([window, negs], 2).reshape(10, -1)
    per_group = []
    with torch.no_grad():
        for lo, hi in ((0, 4), (4, 8), (8, 10)):  # mmd_group = 4: two full groups and a rest of 2
            _, t, e = m.aligned.reps(rows[lo:hi].reshape(-1), text)
            per_group.append(mk_mmd(t, e))
        got = float(m.align_loss(batch, neg))
    assert got == pytest.approx(float(torch.stack(per_group).mean()), rel=1e-4)


def _tllib_linear_reference(zs: torch.Tensor, zt: torch.Tensor, alphas) -> float:  # noqa: ANN001
    """tllib's MultipleKernelMaximumMeanDiscrepancy(linear=True) written out with its index matrix."""
    n, k, index = _tllib_kernels(zs, zt, alphas)
    for i in range(n):
        s1, s2 = i, (i + 1) % n
        t1, t2 = s1 + n, s2 + n
        index[s1, s2] = index[t1, t2] = 1.0 / n
        index[s1, t2] = index[s2, t1] = -1.0 / n
    return float((k * index).sum() + 2.0 / (n - 1))


@pytest.mark.parametrize("estimator", ["tllib", "biased"])
@pytest.mark.parametrize("shape", [(9, 4), (3, 40, 8), (2, 300, 16)])
def test_fast_mk_mmd_equals_the_reference_in_value_and_gradient(estimator: str, shape: tuple) -> None:
    torch.manual_seed(4)
    zs = torch.randn(*shape, requires_grad=True)
    zt = (torch.randn(*shape) * 1.5 + 0.3).requires_grad_()
    fast = mk_mmd(zs, zt, estimator=estimator)
    ref = mk_mmd_reference(zs, zt, estimator=estimator)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    g_fast = torch.autograd.grad(fast.sum(), [zs, zt])
    g_ref = torch.autograd.grad(ref.sum(), [zs, zt])
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # alphas that do not halve one after another take the general path
    odd = (0.3, 1.0, 1.7)
    torch.testing.assert_close(mk_mmd(zs, zt, odd, estimator), mk_mmd_reference(zs, zt, odd, estimator),
                               atol=1e-5, rtol=1e-5)


def test_weighted_rows_stand_for_repeated_rows() -> None:
    torch.manual_seed(5)
    zs, zt = torch.randn(6, 5), torch.randn(6, 5) + 0.5
    idx = torch.tensor([0, 1, 1, 2, 3, 3, 3, 4, 0, 5, 5])
    a_s, a_t = zs.clone().requires_grad_(), zt.clone().requires_grad_()
    ref = mk_mmd_reference(a_s[idx], a_t[idx])
    g_ref = torch.autograd.grad(ref, [a_s, a_t])
    b_s, b_t = zs.clone().requires_grad_(), zt.clone().requires_grad_()
    w = torch.bincount(idx, minlength=6).float()
    got = mk_mmd(b_s, b_t, weights=w)
    g_got = torch.autograd.grad(got, [b_s, b_t])
    assert float(got.detach()) == pytest.approx(float(ref.detach()), abs=1e-5)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # a zero weight is an absent row
    w0 = torch.cat([w, torch.zeros(1)])
    extra_s, extra_t = torch.cat([zs, torch.randn(1, 5)]), torch.cat([zt, torch.randn(1, 5)])
    assert float(mk_mmd(extra_s, extra_t, weights=w0)) == pytest.approx(float(ref.detach()), abs=1e-5)


def test_linear_estimator_is_tllibs_linear_index_matrix() -> None:
    torch.manual_seed(6)
    zs, zt = torch.randn(11, 4), torch.randn(11, 4) + 0.4
    alphas = [2.0**k for k in range(-3, 2)]
    assert float(mk_mmd(zs, zt, estimator="linear")) == pytest.approx(_tllib_linear_reference(zs, zt, alphas),
                                                                       abs=1e-5)
    batched = mk_mmd(torch.stack([zs, zs]), torch.stack([zt, zs]), estimator="linear")
    assert batched.shape == (2,) and float(batched[0]) == pytest.approx(float(mk_mmd(zs, zt, estimator="linear")))
    big = torch.randn(2000, 8)
    assert float(mk_mmd(big, big + 2.0, estimator="linear")) > float(mk_mmd(big, torch.randn(2000, 8),
                                                                            estimator="linear")) + 0.5


@pytest.mark.parametrize("opts", [{}, {"mmd_pad_rows": False}, {"mmd_estimator": "biased"}, {"mmd_group": 3}])
def test_phase2_alignment_fast_equals_reference(planted_text, opts: dict) -> None:  # noqa: ANN001
    """The default (distinct items per group, weighted, closed-form gradient) against the first
    implementation (every row, autograd): same loss, same parameter gradients."""
    from dataclasses import replace

    seqs, _ = planted_text
    text = torch.randn(seqs.n_items + 1, 8)
    text[0] = 0
    cfg = replace(TINY, **opts)
    torch.manual_seed(0)
    fast = PADPhase2(seq_schema(seqs.n_items), cfg, text).eval()
    ref = PADPhase2(seq_schema(seqs.n_items), replace(cfg, mmd_impl="reference"), text).eval()
    ref.load_state_dict(fast.state_dict())
    batch = {k: v[:10] for k, v in _train_windows(seqs, 6, "latest").items()}  # groups of 4: 4 + 4 + 2
    torch.manual_seed(1)
    neg = torch.randint(1, seqs.n_items + 1, batch["target_seq"].shape) * (batch["target_seq"] > 0)
    neg[:, :2] = neg[0, 2]  # repeated items within and across sequences
    a, b = fast.align_loss(batch, neg), ref.align_loss(batch, neg)
    assert float(a.detach()) == pytest.approx(float(b.detach()), abs=1e-5)
    ga = torch.autograd.grad(a, list(fast.parameters()), allow_unused=True)
    gb = torch.autograd.grad(b, list(ref.parameters()), allow_unused=True)
    assert sum(x is not None for x in ga) > 2
    for x, y in zip(ga, gb):
        assert (x is None) == (y is None)
        if x is not None:
            torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-3)


def test_mmd_options_are_checked() -> None:
    from recwise.config import config_from_dict

    assert config_from_dict(PADConfig, {"mmd_estimator": "linear"}).mmd_estimator == "linear"
    with pytest.raises(ConfigError, match="mmd_estimator"):
        config_from_dict(PADConfig, {"mmd_estimator": "fastest"}, where="model")
    with pytest.raises(ConfigError, match="mmd_impl"):
        config_from_dict(PADConfig, {"mmd_impl": "numba"}, where="model")
    with pytest.raises(ConfigError, match="mmd_estimater"):
        config_from_dict(PADConfig, {"mmd_estimater": "linear"}, where="model")
