"""PPNet: the fixed tower trains the agnostic embeddings; the released wiring never does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recwise.errors import ConfigError
from recwise.models.msr.ppnet import PPNet
from tests.models.msr._helpers import ML_SCHEMA as SCHEMA
from tests.models.msr._helpers import eval_three_ways, ml_batch, train_steps


def make_batch(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Label planted in an agnostic field (gender), not in the ids."""
    return ml_batch(n, seed, label=lambda sparse, scenario: ((sparse[:, 2] == 1) ^ (scenario == 1)).float())


def agnostic_grads(model: PPNet, batch: dict[str, torch.Tensor]) -> tuple[float, float, float]:
    """|grad| summed over the agnostic table rows, the scenario table and the id table rows."""
    model.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"]).backward()
    grad = model.embedding.table.weight.grad
    offsets = model.embedding.offsets.tolist()
    ids = grad[: offsets[2]].abs().sum().item()  # user_id and movie_id rows come first
    agn = grad[offsets[2]:].abs().sum().item()  # gender and zip rows
    scenario_grad = model.scenario_embedding.weight.grad  # None when nothing reached it
    return agn, 0.0 if scenario_grad is None else scenario_grad.abs().sum().item(), ids


def test_ids_are_the_two_largest_vocabularies_by_default() -> None:
    model = PPNet(SCHEMA, PPNet.Config())
    assert model.id_cols.tolist() == [0, 1] and model.other_cols.tolist() == [2, 3]
    named = PPNet(SCHEMA, PPNet.Config(id_fields=("movie_id",)))
    assert named.id_cols.tolist() == [1] and named.other_cols.tolist() == [0, 2, 3]
    with pytest.raises(ConfigError, match="id_fields"):
        PPNet(SCHEMA, PPNet.Config(id_fields=("item_id",)))


def test_fixed_tower_gives_the_agnostic_embeddings_a_gradient() -> None:
    torch.manual_seed(0)
    agn, scenario, ids = agnostic_grads(PPNet(SCHEMA, PPNet.Config()), make_batch(256))
    assert agn > 0 and scenario > 0 and ids > 0


def test_released_wiring_never_trains_the_agnostic_embeddings() -> None:
    torch.manual_seed(0)
    model = PPNet(SCHEMA, PPNet.Config(tower_input="gate_input"))
    agn, scenario, ids = agnostic_grads(model, make_batch(256))
    assert agn == 0.0 and scenario == 0.0 and ids > 0
    assert model.towers[0].layers[0].net[0].in_features == 2 * 16 + 3 * 16 + 1  # [id, agn]


def test_trains_and_eval_is_independent_of_batch_composition() -> None:
    torch.manual_seed(0)
    model = PPNet(SCHEMA, PPNet.Config())
    batch = make_batch(512)
    losses = train_steps(model, batch, steps=20)
    assert losses[-1] < losses[0]
    full, pieces, perm, shuffled = eval_three_ways(model, batch)
    torch.testing.assert_close(pieces, full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shuffled, full[perm], atol=1e-6, rtol=1e-5)
