"""M2M: attention runs over each sample's fields; the released cross-batch attention is an option."""

from __future__ import annotations

import pytest
import torch

from recwise.data.schema import Field, FieldKind, Schema
from recwise.errors import ConfigError
from recwise.models.msr.m2m import M2M, M2MConfig

SCHEMA = Schema((
    Field("a", FieldKind.SPARSE, 10), Field("b", FieldKind.SPARSE, 7), Field("x", FieldKind.DENSE),
    Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def batch(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"sparse": torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1),
            "dense": torch.rand(n, 1, generator=g), "scenario": torch.randint(0, 3, (n,), generator=g)}


def model(config: M2MConfig) -> M2M:
    torch.manual_seed(0)
    m = M2M(SCHEMA, config)
    with torch.no_grad():
        m.embedding.table.weight.normal_()
        m.scenario_embedding.weight.normal_()
    m(batch(64, 9))  # one training forward: BatchNorm running statistics
    return m.eval()


def eval_in_two_contexts(m: M2M) -> float:
    shared, other_a, other_b = batch(8, 100), batch(24, 101), batch(24, 102)
    with torch.no_grad():
        a = m({k: torch.cat([shared[k], other_a[k]]) for k in shared})[:8]
        b = m({k: torch.cat([shared[k], other_b[k]]) for k in shared})[:8]
    return (a - b).abs().max().item()


def test_attention_over_fields_is_per_sample() -> None:
    m = model(M2MConfig())
    assert m.transformer.d_model == 16
    assert eval_in_two_contexts(m) < 1e-6


def test_released_option_attends_across_the_batch() -> None:
    m = model(M2MConfig(attend_across_batch=True))
    assert m.transformer.d_model == 3 * 16  # two sparse fields + the scenario, flattened
    assert eval_in_two_contexts(m) > 1e-4


def test_heads_must_divide_width() -> None:
    with pytest.raises(ConfigError, match="n_heads"):
        M2M(SCHEMA, M2MConfig(n_heads=3))


def test_dense_columns_are_ignored() -> None:
    m, b = model(M2MConfig()), batch(16, 3)
    with torch.no_grad():
        assert torch.equal(m(b), m({**b, "dense": torch.rand_like(b["dense"])}))
