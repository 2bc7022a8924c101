"""One contract for every registered CTR backbone (feature-selection task): build, forward,
embed/head split, loss falls, save/load round trip, eval independent of batch composition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.data.synthetic import planted_ctr
from recwise.errors import ConfigError
from recwise.registry import get_model, list_models
from recwise.select.base import bce_loss
from recwise.train import load_model, predict, save_model, seed_everything

MODELS = list_models("ctr")


@pytest.fixture(scope="module")
def planted():  # noqa: ANN201
    return planted_ctr(3000, n_signal=2, n_noise=2, n_copies=1, seed=3)


def test_registry_has_erase_backbones() -> None:
    assert {"mlp", "widedeep", "deepfm", "dcn", "fibinet"} <= set(MODELS)


def _full_loss(model: torch.nn.Module, data: dict[str, torch.Tensor]) -> float:
    logits = torch.from_numpy(predict(model, data))
    return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, data["label"]))


@pytest.mark.parametrize("name", MODELS)
def test_contract(name: str, planted, tmp_path) -> None:  # noqa: ANN001
    train = planted.part("train").tensors()
    test = planted.part("test").tensors()
    schema = planted.table.schema
    seed_everything(0)
    cls = get_model("ctr", name)
    model = cls(schema, cls.Config())
    assert model.fields == [f.name for f in schema.sparse] + [f.name for f in schema.dense]

    # embed -> (B, F, E); forward == head(embed)
    model.eval()
    b = {k: v[:64] for k, v in train.items()}
    emb = model.embed(b)
    assert emb.shape == (64, len(model.fields), model.embed_dim)
    out = model(b)
    assert out.shape == (64,) and torch.isfinite(out).all()
    torch.testing.assert_close(model.head(emb), out)
    # every path reads emb: with all embeddings zeroed the output no longer depends on the row
    with torch.no_grad():
        zero = model.head(torch.zeros_like(emb))
    assert float(zero.max() - zero.min()) < 1e-6
    # and a gate on one field reaches the output
    gated = emb.clone()
    gated[:, 0] *= 50.0
    assert not torch.allclose(model.head(gated), out)

    # loss falls after a few epochs on planted data
    before = _full_loss(model, train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(6):
        perm = torch.randperm(len(train["label"]), generator=g)
        for i in range(0, len(perm), 256):
            batch = {k: v[perm[i:i + 256]] for k, v in train.items()}
            loss = bce_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = _full_loss(model, train)
    assert after < before - 0.05, f"{name}: loss {before:.4f} -> {after:.4f}"

    # eval predictions do not depend on batch size or order
    p_full = predict(model, test, batch_size=100_000)
    np.testing.assert_allclose(predict(model, test, batch_size=7), p_full, atol=1e-5, rtol=1e-5)
    perm = torch.randperm(len(test["label"]), generator=g)
    p_perm = np.empty_like(p_full)
    p_perm[perm.numpy()] = predict(model, {k: v[perm] for k, v in test.items()}, batch_size=333)
    np.testing.assert_allclose(p_perm, p_full, atol=1e-5, rtol=1e-5)

    # save / load round trip rebuilds the same model from the files alone
    save_model(tmp_path / "m", model)
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    np.testing.assert_allclose(predict(loaded, test), p_full, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_single_field_and_sparse_only(name: str, planted) -> None:  # noqa: ANN001
    """Top-1 retraining: a model on one field (sparse or dense) still builds and runs."""
    cls = get_model("ctr", name)
    for field in ("s0", "d0"):
        t = planted.part("test").select([field]).tensors()
        model = cls(planted.table.schema.select([field]), cls.Config()).eval()
        assert model(t).shape == (len(t["label"]),)


@pytest.mark.parametrize("name", MODELS)
def test_unknown_option_is_an_error(name: str, planted) -> None:  # noqa: ANN001
    cls = get_model("ctr", name)
    with pytest.raises(ConfigError, match="unknown option 'model.no_such_option'"):
        cls.from_options(planted.table.schema, {"no_such_option": 1})
    with pytest.raises(ConfigError, match="expects a"):
        cls(planted.table.schema, {"embed_dim": 8})


def test_erase_defaults() -> None:
    for name in ("widedeep", "deepfm", "dcn", "fibinet"):
        c = get_model("ctr", name).Config()
        assert (c.embed_dim, c.init_std, tuple(c.mlp_dims), c.dropout) == (8, 0.01, (32, 16), 0.2)
    assert get_model("ctr", "mlp").Config().mlp_dims == (16, 16)  # ERASE's mlp.py default
    assert get_model("ctr", "dcn").Config().cross_layers == 2
    assert get_model("ctr", "fibinet").Config().reduction_ratio == 3


def test_fibinet_bilinear_matches_the_pairwise_loop() -> None:
    """The batched field_interaction layer equals ERASE's loop: Linear_ij(v_i) * v_j for i < j."""
    from itertools import combinations

    from recwise.models.ctr.fibinet import Bilinear

    torch.manual_seed(0)
    layer = Bilinear(5, 4, "field_interaction")
    x = torch.randn(7, 5, 4)
    loop = [torch.nn.functional.linear(x[:, i], layer.weight[p]) * x[:, j]
            for p, (i, j) in enumerate(combinations(range(5), 2))]
    torch.testing.assert_close(layer(x), torch.stack(loop, dim=1))
