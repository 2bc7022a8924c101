"""AdaSparse: alpha is checkpointed, grows only in training by default, and eval is repeatable."""

from __future__ import annotations

import pytest
import torch

from recwise.data.schema import Field, FieldKind, Schema
from recwise.models.msr.adasparse import AdaSparse, AdaSparseConfig

SCHEMA = Schema((
    Field("a", FieldKind.SPARSE, 10), Field("b", FieldKind.SPARSE, 7), Field("x", FieldKind.DENSE),
    Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def batch(n: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"sparse": torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1),
            "dense": torch.rand(n, 1, generator=g), "scenario": torch.randint(0, 3, (n,), generator=g)}


def model(**options: object) -> AdaSparse:
    torch.manual_seed(0)
    m = AdaSparse(SCHEMA, AdaSparseConfig(**options))  # type: ignore[arg-type]
    with torch.no_grad():
        m.embedding.table.weight.normal_()
        m.scenario_embedding.weight.normal_()
    for seed in range(3):
        m(batch(64, seed))  # training forwards: alpha grows by 3 * delta
    return m.eval()


def test_alpha_grows_in_training_only() -> None:
    m = model()
    assert m.alpha.item() == pytest.approx(1.0 + 3e-4)
    b = batch()
    with torch.no_grad():
        first = m(b)
        for _ in range(5):
            m(batch(16, 50))
        again = m(b)
    assert m.alpha.item() == pytest.approx(1.0 + 3e-4)
    assert torch.equal(first, again)


def test_released_option_grows_alpha_in_eval() -> None:
    m = model(alpha_grows_in_eval=True, delta_alpha=0.5)
    b = batch()
    with torch.no_grad():
        first = m(b)
        again = m(b)
    assert m.alpha.item() == pytest.approx(1.0 + 5 * 0.5)
    assert not torch.allclose(first, again)


def test_alpha_is_checkpointed() -> None:
    m = model()
    fresh = AdaSparse(SCHEMA, AdaSparseConfig())
    assert fresh.alpha.item() == 1.0
    fresh.load_state_dict(m.state_dict())
    fresh.eval()
    assert fresh.alpha.item() == m.alpha.item()
    with torch.no_grad():
        assert torch.equal(fresh(batch()), m(batch()))


@pytest.mark.parametrize("form", ["fusion", "scaling", "binarization"])
def test_forms(form: str) -> None:
    m = model(form=form)
    with torch.no_grad():
        factors = m.input_pruner(m.scenario_embedding(batch()["scenario"]), m.embedding.flat(batch(), dense=False), m.alpha)
    if form == "binarization":
        assert set(factors.unique().tolist()) <= {-1.0, 1.0}
    else:
        assert factors.abs().max() <= 2.0  # beta * sigmoid
