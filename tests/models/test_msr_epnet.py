"""EPNet: the tower is a real MLP by default, the released one-Linear tower on request."""

from __future__ import annotations

import torch
from torch import nn

from recwise.data.schema import Field, FieldKind, Schema
from recwise.models.msr.epnet import EPNet

SCHEMA = Schema((
    Field("user_id", FieldKind.SPARSE, 30), Field("movie_id", FieldKind.SPARSE, 40),
    Field("gender", FieldKind.SPARSE, 2), Field("zip", FieldKind.SPARSE, 9),
    Field("age", FieldKind.DENSE), Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def make_batch(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sparse = torch.stack([torch.randint(0, f.vocab_size, (n,), generator=g) for f in SCHEMA.sparse], dim=1)
    scenario = torch.randint(0, 3, (n,), generator=g)
    label = ((sparse[:, 0] % 2) ^ (scenario == 1).long()).float()  # planted: learnable from id + scenario
    return {"sparse": sparse, "dense": torch.rand(n, 1, generator=g), "scenario": scenario, "label": label}


def train_steps(model: nn.Module, batch: dict[str, torch.Tensor], steps: int = 30) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    model.train()
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


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
    batch = make_batch(64)
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
    batch = make_batch(512)
    losses = train_steps(model, batch)
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        full = model(batch)
        pieces = torch.cat([model({k: v[i:i + 7] for k, v in batch.items()}) for i in range(0, 512, 7)])
        perm = torch.randperm(512)
        shuffled = model({k: v[perm] for k, v in batch.items()})
    torch.testing.assert_close(pieces, full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shuffled, full[perm], atol=1e-6, rtol=1e-5)
