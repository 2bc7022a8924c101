"""G3's alignment heads: the two CLIP losses, training on planted pairs, verification."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.errors import ConfigError
from recwise.models.geo.align import AlignConfig, GeoAligner, clip_loss, train_alignment


def test_clip_loss_is_low_for_matched_rows_and_log_b_for_uninformative_ones() -> None:
    eye = torch.eye(8)
    scale = torch.tensor(np.log(100.0))
    assert float(clip_loss(eye, eye, scale)) < 1e-3
    same = torch.ones(8, 8) / np.sqrt(8)
    assert float(clip_loss(same, same, scale)) == pytest.approx(np.log(8), rel=1e-5)


def _planted(n: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 8))  # a hidden location; query, text and location features are views of it
    q = np.tanh(z @ rng.normal(size=(8, 32))) + 0.05 * rng.normal(size=(n, 32))
    t = np.tanh(z @ rng.normal(size=(8, 24)))
    loc = np.tanh(z @ rng.normal(size=(8, 512)))
    return q.astype(np.float32), t.astype(np.float32), loc.astype(np.float32)


def test_training_aligns_queries_with_their_locations() -> None:
    q, t, loc = _planted()
    torch.manual_seed(0)
    heads = GeoAligner(32, 24)
    cfg = AlignConfig(lr=3e-3, epochs=15, batch_size=128)

    def top1() -> float:
        with torch.no_grad():
            s = heads.gps_space(torch.from_numpy(q)) @ heads.location_space(torch.from_numpy(loc)).T
        return float((s.argmax(1) == torch.arange(len(q))).float().mean())

    before = top1()
    hist = train_alignment(heads, q, t, loc, cfg, seed=0)
    assert hist["loss"][-1] < hist["loss"][0] * 0.6
    assert top1() > max(0.3, 5 * before)
    # the same seed gives the same run
    torch.manual_seed(0)
    again = train_alignment(GeoAligner(32, 24), q, t, loc, cfg, seed=0)
    assert again["loss"] == pytest.approx(hist["loss"])
    with torch.no_grad():
        db = heads.database_embedding(torch.from_numpy(q))
    assert db.shape == (len(q), 96)
    np.testing.assert_allclose(db.reshape(len(q), 3, 32).norm(dim=-1).numpy(), 1.0, atol=1e-5)


def test_verification_picks_the_best_valid_candidate() -> None:
    q, t, loc = _planted(64)
    heads = GeoAligner(32, 24)
    train_alignment(heads, q, t, loc, AlignConfig(lr=3e-3, epochs=20, batch_size=64), seed=0)
    qt = torch.from_numpy(q[:4])
    cands = torch.from_numpy(np.stack([loc[[10, i, 20]] for i in range(4)]))  # the true one is in the middle
    scores, best = heads.verify(qt, cands)
    assert scores.shape == (4, 3) and best.tolist() == [1, 1, 1, 1]
    valid = torch.tensor([[True, False, True]] * 4)
    _, best = heads.verify(qt, cands, valid)
    assert (best != 1).all()
    _, best = heads.verify(qt, cands, torch.zeros(4, 3, dtype=torch.bool))
    assert best.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(("kw", "msg"), [({"lr": 0}, "align.lr"), ({"batch_size": 1}, "align.batch_size"),
                                         ({"epochs": -1}, "align.epochs"), ({"weight_decay": -1.0}, "weight_decay")])
def test_bad_options(kw: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        AlignConfig(**kw)
