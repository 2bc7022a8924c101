"""M3oE: STAR layer per scenario, domain-balance fusion, eval independent of batch composition."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from recwise.data.schema import Field, FieldKind, Schema
from recwise.errors import ConfigError
from recwise.models.msr.m3oe import M3oE

SCHEMA = Schema((
    Field("user_id", FieldKind.SPARSE, 30), Field("movie_id", FieldKind.SPARSE, 40),
    Field("gender", FieldKind.SPARSE, 2), Field("zip", FieldKind.SPARSE, 9),
    Field("age", FieldKind.DENSE), Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def make_batch(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sparse = torch.stack([torch.randint(0, f.vocab_size, (n,), generator=g) for f in SCHEMA.sparse], dim=1)
    scenario = torch.randint(0, 3, (n,), generator=g)
    label = ((sparse[:, 0] % 2) ^ (scenario == 1).long()).float()
    return {"sparse": sparse, "dense": torch.rand(n, 1, generator=g), "scenario": scenario, "label": label}


def perturbed_output(
    model: M3oE, batch: dict[str, torch.Tensor], perturb: Callable[[M3oE], object]
) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        before = model(batch)
        perturb(model)
        return before, model(batch)


def test_star_layer_uses_only_the_rows_own_scenario_weights() -> None:
    torch.manual_seed(0)
    batch = make_batch(64)
    model = M3oE(SCHEMA, M3oE.Config())
    before, after = perturbed_output(model, batch, lambda m: m.scenario_weight[2].add_(1.0))
    rows = batch["scenario"] == 2
    assert torch.equal(before[~rows], after[~rows]) and not torch.allclose(before[rows], after[rows])


@pytest.mark.parametrize(("bal_d", "others_matter"), [(1.0, True), (40.0, False)])
def test_balance_fusion_mixes_other_scenarios_experts(bal_d: float, others_matter: bool) -> None:
    torch.manual_seed(0)
    batch = make_batch(64)
    model = M3oE(SCHEMA, M3oE.Config(bal_d=bal_d))  # sigmoid(40) == 1: only the own expert
    # shift expert 1 after its LayerNorm (a shift before it would be normalised away)
    before, after = perturbed_output(model, batch, lambda m: m.scenario_experts[1][1].bias.add_(5.0))
    rows = batch["scenario"] == 0
    assert (not torch.allclose(before[rows], after[rows])) == others_matter


def test_trains_and_eval_is_independent_of_batch_composition() -> None:
    torch.manual_seed(0)
    model = M3oE(SCHEMA, M3oE.Config())
    batch = make_batch(512)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        full = model(batch)
        pieces = torch.cat([model({k: v[i:i + 7] for k, v in batch.items()}) for i in range(0, 512, 7)])
        perm = torch.randperm(512)
        shuffled = model({k: v[perm] for k, v in batch.items()})
    torch.testing.assert_close(pieces, full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shuffled, full[perm], atol=1e-6, rtol=1e-5)


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="star_dims"):
        M3oE.from_options(SCHEMA, {"star_dims": [128]})
