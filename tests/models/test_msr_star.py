"""STAR: eval does not depend on batch composition (unless the released option is on)."""

from __future__ import annotations

import torch

from recwise.data.schema import Field, FieldKind, Schema
from recwise.models.msr.star import STAR, STARConfig

SCHEMA = Schema((
    Field("a", FieldKind.SPARSE, 10), Field("b", FieldKind.SPARSE, 7), Field("x", FieldKind.DENSE),
    Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def batch(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"sparse": torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1),
            "dense": torch.rand(n, 1, generator=g), "scenario": torch.randint(0, 3, (n,), generator=g)}


def trained(config: STARConfig) -> STAR:
    torch.manual_seed(0)
    model = STAR(SCHEMA, config)
    with torch.no_grad():  # embeddings start near zero; spread them so the norm has something to do
        model.embedding.table.weight.normal_()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(5):
        b = batch(128, step)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(b), (b["sparse"][:, 0] % 2).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def eval_in_two_contexts(model: STAR) -> float:
    """Max |diff| of the predictions for 16 shared rows, batched with two different companions."""
    shared, other_a, other_b = batch(16, 100), batch(48, 101), batch(48, 102)
    with torch.no_grad():
        a = model({k: torch.cat([shared[k], other_a[k]]) for k in shared})[:16]
        b = model({k: torch.cat([shared[k], other_b[k]]) for k in shared})[:16]
    return (a - b).abs().max().item()


def test_fixed_eval_is_independent_of_batch() -> None:
    assert eval_in_two_contexts(trained(STARConfig())) < 1e-6


def test_released_option_reproduces_batch_dependence() -> None:
    assert eval_in_two_contexts(trained(STARConfig(norm_batch_stats_in_eval=True))) > 1e-3


def test_running_statistics_are_learned_and_saved() -> None:
    model = trained(STARConfig())
    assert model.norm.num_batches_tracked.item() == 5
    assert "norm.running_mean" in model.state_dict()


def test_output_relu_option() -> None:
    model = trained(STARConfig(output_relu=True))
    b = batch(32, 7)
    with torch.no_grad():
        fcn_part = model(b) - model.aux(model.embedding.flat(b)).squeeze(1)
    assert (fcn_part >= 0).all()  # the released ReLU keeps the scenario network's part non-negative
    assert STAR(SCHEMA, STARConfig(output_relu=False))(batch(8, 1)).shape == (8,)
