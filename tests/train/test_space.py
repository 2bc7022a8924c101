"""Search spaces: ranges are checked, and every msr model declares one that its config accepts."""

from __future__ import annotations

import argparse

import optuna
import pytest

from recwise.bench.tune import _distribution
from recwise.errors import ConfigError
from recwise.registry import get_model, list_models
from recwise.tasks.msr import MSRTask
from recwise.train.space import TRAIN_SPACE, Choice, Float, Int, in_space


@pytest.mark.parametrize(("make", "pattern"), [
    (lambda: Float(1.0, 1.0), "low < high"),
    (lambda: Float(0.0, 1.0, log=True), "log-scale"),
    (lambda: Int(0, 4, log=True), "log-scale"),
    (lambda: Choice((8,)), "two or more"),
    (lambda: Choice((8, 8)), "distinct"),
])
def test_bad_ranges_are_config_errors(make, pattern: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=pattern):
        make()


def test_in_space_names_the_keys_out_of_range() -> None:
    space = {"train.lr": Float(1e-4, 1e-2, log=True), "model.embed_dim": Choice((8, 16))}
    assert in_space(space, {"train.lr": 1e-3, "model.embed_dim": 8}) == []
    assert in_space(space, {"train.lr": 0.5, "model.embed_dim": 12, "train.x": 1}) == [
        "train.lr", "model.embed_dim", "train.x"]


@pytest.mark.parametrize("model", list_models("msr"))
def test_every_msr_model_declares_a_space_its_config_accepts(model: str) -> None:
    task = MSRTask()
    space = task.search_space(model)
    assert set(TRAIN_SPACE) <= set(space)  # the same family for every model
    fields = set(get_model("msr", model).Config.__dataclass_fields__)
    own = {k.removeprefix("model.") for k in space if k.startswith("model.")}
    assert own <= fields
    if model != "lr":
        assert "embed_dim" in own and len(own) >= 2  # the embedding width and the model's own width
    if "dropout" in fields:
        assert "dropout" in own
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists = {k: _distribution(optuna, p) for k, p in space.items()}
    for _ in range(4):
        trial = study.ask(dists)
        assert in_space(space, trial.params) == []
        sets = [f"{k}={v}" for k, v in trial.params.items()]
        args = argparse.Namespace(dataset="ml-100k", set=sets, epochs=None, preset=None, split_seed=2022)
        resolved = task.options(args, [model])["resolved"][model]  # the config takes every sampled value
        assert resolved["train"]["lr"] == pytest.approx(trial.params["train.lr"])
        study.tell(trial, 0.5)
