"""STAR: eval does not depend on batch composition (unless the released option is on)."""

from __future__ import annotations

import torch

from recwise.models.msr.star import STAR, STARConfig
from tests.models.msr._helpers import SMALL_SCHEMA as SCHEMA
from tests.models.msr._helpers import eval_in_two_contexts, small_batch, spread_model


def trained(config: STARConfig) -> STAR:
    model = spread_model(STAR, config, scenario_embedding=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(5):
        b = small_batch(128, step)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(b), (b["sparse"][:, 0] % 2).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_fixed_eval_is_independent_of_batch() -> None:
    assert eval_in_two_contexts(trained(STARConfig()), 16, 48) < 1e-6


def test_released_option_reproduces_batch_dependence() -> None:
    assert eval_in_two_contexts(trained(STARConfig(norm_batch_stats_in_eval=True)), 16, 48) > 1e-3


def test_running_statistics_are_learned_and_saved() -> None:
    model = trained(STARConfig())
    assert model.norm.num_batches_tracked.item() == 5
    assert "norm.running_mean" in model.state_dict()


def test_output_relu_option() -> None:
    model = trained(STARConfig(output_relu=True))
    b = small_batch(32, 7)
    with torch.no_grad():
        fcn_part = model(b) - model.aux(model.embedding.flat(b)).squeeze(1)
    assert (fcn_part >= 0).all()  # the released ReLU keeps the scenario network's part non-negative
    assert STAR(SCHEMA, STARConfig(output_relu=False))(small_batch(8, 1)).shape == (8,)


def test_partitioned_norm_keeps_statistics_per_scenario() -> None:
    model = trained(STARConfig(norm_stats="scenario"))
    b = small_batch(4096, 3)
    with torch.no_grad():
        x = model.embedding.flat(b)
        model.train()
        z = model._standardise(x, b["scenario"])
    for s in range(3):  # in training each scenario's rows are standardised by their own statistics
        rows = z[b["scenario"] == s]
        assert rows.mean(0).abs().max() < 1e-4
        assert (rows.var(0, unbiased=False) - 1).abs().max() < 1e-2
    means = torch.stack([n.running_mean for n in model.scenario_norms])
    assert (means[0] - means[1]).abs().max() > 0  # three separate sets of running statistics
    assert eval_in_two_contexts(model.eval(), 16, 48) < 1e-6


def test_unknown_norm_stats_is_an_error() -> None:
    import pytest

    from recwise.errors import ConfigError

    with pytest.raises(ConfigError, match="norm_stats"):
        STARConfig(norm_stats="domain")
