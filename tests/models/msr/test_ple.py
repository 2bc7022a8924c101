"""PLE: CGC levels stack, gates mix the right experts, each row reads its own scenario's tower."""

from __future__ import annotations

import pytest
import torch

from recwise.models.msr.ple import PLE, PLEConfig
from tests.models.msr._helpers import SMALL_SCHEMA as SCHEMA
from tests.models.msr._helpers import perturbed_output, small_batch


@pytest.mark.parametrize("n_level", [1, 2, 3])
def test_levels_build_and_forward(n_level: int) -> None:
    torch.manual_seed(0)
    model = PLE(SCHEMA, PLEConfig(n_level=n_level))
    assert len(model.levels) == n_level
    assert model.levels[-1].shared_gate is None  # the last level has no shared gate
    assert all(level.shared_gate is not None for level in model.levels[:-1])
    out = model(small_batch(64))
    assert out.shape == (64,) and torch.isfinite(out).all()


def test_row_uses_its_own_scenario_tower() -> None:
    torch.manual_seed(0)
    model = PLE(SCHEMA, PLEConfig()).eval()
    b = small_batch(64)
    # perturbing tower 0 must leave rows of the other scenarios unchanged
    base, moved = perturbed_output(model, b, lambda m: m.towers[0].net[-1].bias.add_(1.0))
    own = b["scenario"] == 0
    assert torch.allclose(moved[own], base[own] + 1.0, atol=1e-5)
    assert torch.equal(moved[~own], base[~own])
