"""SAR-Net: a row sees only its own scenario's transfer and own experts; dense columns are unused."""

from __future__ import annotations

import torch

from recwise.models.msr.sarnet import SARNet, SARNetConfig
from tests.models.msr._helpers import small_batch, spread_model


def model() -> SARNet:
    m = spread_model(SARNet, SARNetConfig(), scenario_embedding=False)
    m.train()
    m(small_batch(256, 5))  # give the BatchNorms running statistics
    return m.eval()


def test_scenario_parameters_only_touch_their_rows() -> None:
    m, b = model(), small_batch(64)
    with torch.no_grad():
        base = m(b)
        m.shift[1].add_(0.5)
        after_shift = m(b)
        m.own_experts[2][0].linear.bias.add_(0.5)
        after_expert = m(b)
    s = b["scenario"]
    assert torch.equal(after_shift[s != 1], base[s != 1]) and not torch.allclose(after_shift[s == 1], base[s == 1])
    assert torch.equal(after_expert[s != 2], after_shift[s != 2])
    assert not torch.allclose(after_expert[s == 2], after_shift[s == 2])


def test_dense_columns_are_ignored() -> None:
    m, b = model(), small_batch(64)
    with torch.no_grad():
        assert torch.equal(m(b), m({**b, "dense": torch.rand_like(b["dense"])}))
    assert m.gate.in_features == 2 * 16
