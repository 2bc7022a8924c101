"""EPNet: the tower is a real MLP by default, the released one-Linear tower on request."""

from __future__ import annotations

import torch
from torch import nn

from recwise.models.msr.epnet import EPNet
from tests.models.msr._helpers import ML_SCHEMA as SCHEMA
from tests.models.msr._helpers import eval_three_ways, ml_batch, train_steps


def test_default_tower_is_an_mlp_with_the_fcn_widths() -> None:
    model = EPNet(SCHEMA, EPNet.Config())
    linears = [m for m in model.tower.modules() if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in linears] == [128, 64, 32, 1]
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.tower.modules())


def test_single_linear_mlp_restores_the_released_tower() -> None:
    model = EPNet(SCHEMA, EPNet.Config(single_linear_mlp=True))
    linears = [m for m in model.tower.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 4 * 16 + 1 and linears[0].out_features == 1


def test_gate_does_not_backpropagate_into_the_agnostic_embedding() -> None:
    model = EPNet(SCHEMA, EPNet.Config())
    batch = ml_batch(64)
    agn = model.embedding.flat(batch).detach().requires_grad_(True)
    gate_in = torch.cat([model.scenario_embedding(batch["scenario"]), agn.detach()], dim=1)
    model.gate(gate_in).sum().backward()
    assert agn.grad is None  # the gate reads a detached copy
    model.zero_grad()
    model(batch).sum().backward()
    assert model.embedding.table.weight.grad.abs().sum() > 0  # the tower path still trains it
    assert model.scenario_embedding.weight.grad.abs().sum() > 0


def test_trains_and_eval_is_independent_of_batch_composition() -> None:
    torch.manual_seed(0)
    model = EPNet(SCHEMA, EPNet.Config())
    batch = ml_batch(512)
    losses = train_steps(model, batch)
    assert losses[-1] < losses[0]
    full, pieces, perm, shuffled = eval_three_ways(model, batch)
    torch.testing.assert_close(pieces, full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shuffled, full[perm], atol=1e-6, rtol=1e-5)
