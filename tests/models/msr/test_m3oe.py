"""M3oE: STAR layer per scenario, domain-balance fusion, eval independent of batch composition."""

from __future__ import annotations

import pytest
import torch

from recwise.errors import ConfigError
from recwise.models.msr.m3oe import M3oE
from tests.models.msr._helpers import ML_SCHEMA as SCHEMA
from tests.models.msr._helpers import eval_three_ways, ml_batch, perturbed_output, train_steps


def test_star_layer_uses_only_the_rows_own_scenario_weights() -> None:
    torch.manual_seed(0)
    batch = ml_batch(64)
    model = M3oE(SCHEMA, M3oE.Config())
    before, after = perturbed_output(model, batch, lambda m: m.scenario_weight[2].add_(1.0))
    rows = batch["scenario"] == 2
    assert torch.equal(before[~rows], after[~rows]) and not torch.allclose(before[rows], after[rows])


@pytest.mark.parametrize(("bal_d", "others_matter"), [(1.0, True), (40.0, False)])
def test_balance_fusion_mixes_other_scenarios_experts(bal_d: float, others_matter: bool) -> None:
    torch.manual_seed(0)
    batch = ml_batch(64)
    model = M3oE(SCHEMA, M3oE.Config(bal_d=bal_d))  # sigmoid(40) == 1: only the own expert
    # shift expert 1 after its LayerNorm (a shift before it would be normalised away)
    before, after = perturbed_output(model, batch, lambda m: m.scenario_experts[1][1].bias.add_(5.0))
    rows = batch["scenario"] == 0
    assert (not torch.allclose(before[rows], after[rows])) == others_matter


def test_trains_and_eval_is_independent_of_batch_composition() -> None:
    torch.manual_seed(0)
    model = M3oE(SCHEMA, M3oE.Config())
    batch = ml_batch(512)
    losses = train_steps(model, batch, steps=20)
    assert losses[-1] < losses[0]
    full, pieces, perm, shuffled = eval_three_ways(model, batch)
    torch.testing.assert_close(pieces, full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shuffled, full[perm], atol=1e-6, rtol=1e-5)


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="star_dims"):
        M3oE.from_options(SCHEMA, {"star_dims": [128]})
