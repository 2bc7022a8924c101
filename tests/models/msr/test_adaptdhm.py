"""AdaptDHM: centres are checkpointed, move only in training, and eval routing is per row."""

from __future__ import annotations

import torch

from recwise.models.msr.adaptdhm import AdaptDHM, AdaptDHMConfig
from tests.models.msr._helpers import small_batch, spread_model


def model(config: AdaptDHMConfig | None = None, seed: int = 0) -> AdaptDHM:
    return spread_model(AdaptDHM, config or AdaptDHMConfig(), seed=seed)


def test_centres_move_in_training_only() -> None:
    m = model()
    start = m.centres.clone()
    m(small_batch(64, 1))
    trained = m.centres.clone()
    assert not torch.allclose(start, trained)
    assert torch.allclose(trained.norm(dim=1), torch.ones(3))
    m.eval()
    with torch.no_grad():
        m(small_batch(64, 2))
    assert torch.equal(m.centres, trained)


def test_centres_survive_a_state_dict_round_trip() -> None:
    m = model()
    m(small_batch(64, 1))
    m.eval()
    other = model(seed=1)  # different random centres
    assert not torch.allclose(other.centres, m.centres)
    other.load_state_dict(m.state_dict())
    other.eval()
    assert torch.equal(other.centres, m.centres)
    with torch.no_grad():
        assert torch.equal(other(small_batch()), m(small_batch()))


def test_released_option_leaves_centres_out_of_the_checkpoint() -> None:
    m = model(AdaptDHMConfig(checkpoint_centres=False))
    assert "centres" not in m.state_dict()
    assert "centres" in model().state_dict()


def test_eval_routing_is_per_row() -> None:
    m = model()
    m(small_batch(64, 1))
    m.eval()
    b = small_batch(40, 3)
    with torch.no_grad():
        whole = m(b)
        pieces = torch.cat([m({k: v[i : i + 7] for k, v in b.items()}) for i in range(0, 40, 7)])
    assert torch.allclose(whole, pieces, atol=1e-6)
    assert set(m.route(torch.randn(100, 48)).tolist()) <= {0, 1, 2}
