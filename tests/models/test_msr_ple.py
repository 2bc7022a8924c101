"""PLE: CGC levels stack, gates mix the right experts, each row reads its own scenario's tower."""

from __future__ import annotations

import pytest
import torch

from recwise.data.schema import Field, FieldKind, Schema
from recwise.models.msr.ple import PLE, PLEConfig

SCHEMA = Schema((
    Field("a", FieldKind.SPARSE, 10), Field("b", FieldKind.SPARSE, 7), Field("x", FieldKind.DENSE),
    Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def batch(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"sparse": torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1),
            "dense": torch.rand(n, 1, generator=g), "scenario": torch.randint(0, 3, (n,), generator=g)}


@pytest.mark.parametrize("n_level", [1, 2, 3])
def test_levels_build_and_forward(n_level: int) -> None:
    torch.manual_seed(0)
    model = PLE(SCHEMA, PLEConfig(n_level=n_level))
    assert len(model.levels) == n_level
    assert model.levels[-1].shared_gate is None  # the last level has no shared gate
    assert all(level.shared_gate is not None for level in model.levels[:-1])
    out = model(batch())
    assert out.shape == (64,) and torch.isfinite(out).all()


def test_row_uses_its_own_scenario_tower() -> None:
    torch.manual_seed(0)
    model = PLE(SCHEMA, PLEConfig()).eval()
    b = batch()
    with torch.no_grad():
        base = model(b)
        # perturbing tower 0 must leave rows of the other scenarios unchanged
        model.towers[0].net[-1].bias.add_(1.0)
        moved = model(b)
    own = b["scenario"] == 0
    assert torch.allclose(moved[own], base[own] + 1.0, atol=1e-5)
    assert torch.equal(moved[~own], base[~own])
