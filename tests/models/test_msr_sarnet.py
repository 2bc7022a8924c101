"""SAR-Net: a row sees only its own scenario's transfer and own experts; dense columns are unused."""

from __future__ import annotations

import torch

from recwise.data.schema import Field, FieldKind, Schema
from recwise.models.msr.sarnet import SARNet, SARNetConfig

SCHEMA = Schema((
    Field("a", FieldKind.SPARSE, 10), Field("b", FieldKind.SPARSE, 7), Field("x", FieldKind.DENSE),
    Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def batch(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"sparse": torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1),
            "dense": torch.rand(n, 1, generator=g), "scenario": torch.randint(0, 3, (n,), generator=g)}


def model() -> SARNet:
    torch.manual_seed(0)
    m = SARNet(SCHEMA, SARNetConfig())
    with torch.no_grad():
        m.embedding.table.weight.normal_()
    m.train()
    m(batch(256, 5))  # give the BatchNorms running statistics
    return m.eval()


def test_scenario_parameters_only_touch_their_rows() -> None:
    m, b = model(), batch()
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
    m, b = model(), batch()
    with torch.no_grad():
        assert torch.equal(m(b), m({**b, "dense": torch.rand_like(b["dense"])}))
    assert m.gate.in_features == 2 * 16
