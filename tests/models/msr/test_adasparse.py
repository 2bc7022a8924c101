"""AdaSparse: alpha is checkpointed, grows only in training by default, and eval is repeatable."""

from __future__ import annotations

import pytest
import torch

from recwise.models.msr.adasparse import AdaSparse, AdaSparseConfig
from tests.models.msr._helpers import SMALL_SCHEMA as SCHEMA
from tests.models.msr._helpers import small_batch, spread_model


def model(**options: object) -> AdaSparse:
    m = spread_model(AdaSparse, AdaSparseConfig(**options))  # type: ignore[arg-type]
    for seed in range(3):
        m(small_batch(64, seed))  # training forwards: alpha grows by 3 * delta
    return m.eval()


def test_alpha_grows_in_training_only() -> None:
    m = model()
    assert m.alpha.item() == pytest.approx(1.0 + 3e-4)
    b = small_batch()
    with torch.no_grad():
        first = m(b)
        for _ in range(5):
            m(small_batch(16, 50))
        again = m(b)
    assert m.alpha.item() == pytest.approx(1.0 + 3e-4)
    assert torch.equal(first, again)


def test_released_option_grows_alpha_in_eval() -> None:
    m = model(alpha_grows_in_eval=True, delta_alpha=0.5)
    b = small_batch()
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
        assert torch.equal(fresh(small_batch()), m(small_batch()))


@pytest.mark.parametrize("form", ["fusion", "scaling", "binarization"])
def test_forms(form: str) -> None:
    m = model(form=form)
    with torch.no_grad():
        factors = m.input_pruner(m.scenario_embedding(small_batch()["scenario"]),
                                 m.embedding.flat(small_batch(), dense=False), m.alpha)
    if form == "binarization":
        assert set(factors.unique().tolist()) <= {-1.0, 1.0}
    else:
        assert factors.abs().max() <= 2.0  # beta * sigmoid
