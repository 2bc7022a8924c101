"""AdaptDHM: centres are checkpointed, move only in training, and eval routing is per row."""

from __future__ import annotations

import torch

from recwise.data.schema import Field, FieldKind, Schema
from recwise.models.msr.adaptdhm import AdaptDHM, AdaptDHMConfig

SCHEMA = Schema((
    Field("a", FieldKind.SPARSE, 10), Field("b", FieldKind.SPARSE, 7), Field("x", FieldKind.DENSE),
    Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def batch(n: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"sparse": torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1),
            "dense": torch.rand(n, 1, generator=g), "scenario": torch.randint(0, 3, (n,), generator=g)}


def model(config: AdaptDHMConfig | None = None, seed: int = 0) -> AdaptDHM:
    torch.manual_seed(seed)
    m = AdaptDHM(SCHEMA, config or AdaptDHMConfig())
    with torch.no_grad():
        m.embedding.table.weight.normal_()
        m.scenario_embedding.weight.normal_()
    return m


def test_centres_move_in_training_only() -> None:
    m = model()
    start = m.centres.clone()
    m(batch(64, 1))
    trained = m.centres.clone()
    assert not torch.allclose(start, trained)
    assert torch.allclose(trained.norm(dim=1), torch.ones(3))
    m.eval()
    with torch.no_grad():
        m(batch(64, 2))
    assert torch.equal(m.centres, trained)


def test_centres_survive_a_state_dict_round_trip() -> None:
    m = model()
    m(batch(64, 1))
    m.eval()
    other = model(seed=1)  # different random centres
    assert not torch.allclose(other.centres, m.centres)
    other.load_state_dict(m.state_dict())
    other.eval()
    assert torch.equal(other.centres, m.centres)
    with torch.no_grad():
        assert torch.equal(other(batch()), m(batch()))


def test_released_option_leaves_centres_out_of_the_checkpoint() -> None:
    m = model(AdaptDHMConfig(checkpoint_centres=False))
    assert "centres" not in m.state_dict()
    assert "centres" in model().state_dict()


def test_eval_routing_is_per_row() -> None:
    m = model()
    m(batch(64, 1))
    m.eval()
    b = batch(40, 3)
    with torch.no_grad():
        whole = m(b)
        pieces = torch.cat([m({k: v[i : i + 7] for k, v in b.items()}) for i in range(0, 40, 7)])
    assert torch.allclose(whole, pieces, atol=1e-6)
    assert set(m.route(torch.randn(100, 48)).tolist()) <= {0, 1, 2}
