"""M2M: attention runs over each sample's fields; the released cross-batch attention is an option."""

from __future__ import annotations

import pytest
import torch

from recwise.errors import ConfigError
from recwise.models.msr.m2m import M2M, M2MConfig
from tests.models.msr._helpers import SMALL_SCHEMA as SCHEMA
from tests.models.msr._helpers import eval_in_two_contexts, small_batch, spread_model


def model(config: M2MConfig) -> M2M:
    m = spread_model(M2M, config)
    m(small_batch(64, 9))  # one training forward: BatchNorm running statistics
    return m.eval()


def test_attention_over_fields_is_per_sample() -> None:
    m = model(M2MConfig())
    assert m.transformer.d_model == 16
    assert eval_in_two_contexts(m, 8, 24) < 1e-6


def test_released_option_attends_across_the_batch() -> None:
    m = model(M2MConfig(attend_across_batch=True))
    assert m.transformer.d_model == 3 * 16  # two sparse fields + the scenario, flattened
    assert eval_in_two_contexts(m, 8, 24) > 1e-4


def test_heads_must_divide_width() -> None:
    with pytest.raises(ConfigError, match="n_heads"):
        M2M(SCHEMA, M2MConfig(n_heads=3))


def test_dense_columns_are_ignored() -> None:
    m, b = model(M2MConfig()), small_batch(16, 3)
    with torch.no_grad():
        assert torch.equal(m(b), m({**b, "dense": torch.rand_like(b["dense"])}))
