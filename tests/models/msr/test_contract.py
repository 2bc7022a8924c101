"""One contract for every registered multi-scenario model: build, forward, loss falls,
save/load round trip, eval independent of batch composition, config checking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.data.cache import Prepared
from recwise.errors import ConfigError
from recwise.registry import get_model, list_models
from recwise.tasks.msr import bce_loss
from recwise.train import load_model, predict, save_model, seed_everything

MODELS = list_models("msr")


def test_registry_has_the_paper_models_and_baselines() -> None:
    expected = {"sharedbottom", "mmoe", "ple", "sarnet", "star", "m2m", "adasparse", "adaptdhm", "epnet", "ppnet",
                "hamur", "m3oe", "lr", "shared", "single"}
    assert expected <= set(MODELS), f"missing: {expected - set(MODELS)}"


def _build(name: str, planted: Prepared) -> torch.nn.Module:
    seed_everything(0)
    cls = get_model("msr", name)
    return cls(planted.table.schema, cls.Config())


def _full_loss(model: torch.nn.Module, data: dict[str, torch.Tensor]) -> float:
    logits = torch.from_numpy(predict(model, data))
    return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, data["label"]))


@pytest.mark.parametrize("name", MODELS)
def test_contract(name: str, planted: Prepared, tmp_path) -> None:  # noqa: ANN001
    train = planted.part("train").tensors()
    test = planted.part("test").tensors()
    model = _build(name, planted)

    # forward: one logit per row, finite
    out = model({k: v[:64] for k, v in train.items()})
    assert out.shape == (64,) and torch.isfinite(out).all()

    # loss falls after a few epochs of training on planted data
    before = _full_loss(model, train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # the papers' rate
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(8):
        perm = torch.randperm(len(train["label"]), generator=g)
        for i in range(0, len(perm), 256):
            batch = {k: v[perm[i:i + 256]] for k, v in train.items()}
            loss = bce_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = _full_loss(model, train)
    assert after < before - 0.02, f"{name}: loss {before:.4f} -> {after:.4f}"

    # eval predictions do not depend on batch size or order
    p_full = predict(model, test, batch_size=100_000)
    p_small = predict(model, test, batch_size=7)
    perm = torch.randperm(len(test["label"]), generator=g)
    p_perm = np.empty_like(p_full)
    p_perm[perm.numpy()] = predict(model, {k: v[perm] for k, v in test.items()}, batch_size=333)
    np.testing.assert_allclose(p_small, p_full, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(p_perm, p_full, atol=1e-5, rtol=1e-5)
    # ... nor on how many times eval ran before
    np.testing.assert_allclose(predict(model, test, batch_size=100_000), p_full, atol=1e-6)

    # save / load round trip rebuilds the same model from the files alone
    save_model(tmp_path / "m", model)
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    np.testing.assert_allclose(predict(loaded, test), p_full, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_unknown_option_is_an_error(name: str, planted: Prepared) -> None:
    cls = get_model("msr", name)
    with pytest.raises(ConfigError, match="unknown option 'model.no_such_option'"):
        cls.from_options(planted.table.schema, {"no_such_option": 1})
    with pytest.raises(ConfigError, match="expects a"):
        cls(planted.table.schema, {"embed_dim": 8})


def test_misspelled_option_suggests_the_right_one(planted: Prepared) -> None:
    cls = get_model("msr", "mmoe")
    with pytest.raises(ConfigError, match="did you mean 'expert_dims'"):
        cls.from_options(planted.table.schema, {"expert_dim": "16"})


def test_unknown_model_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'mmoe'"):
        get_model("msr", "MMOE")
