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
    cfg = AlignConfig(lr=3e-3, epochs=15, batch_size=128, location="frozen")

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
    train_alignment(heads, q, t, loc, AlignConfig(lr=3e-3, epochs=20, batch_size=64, location="frozen"), seed=0)
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


def _encoder_state(enc: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in enc.state_dict().items()}


def test_trained_location_encoder_changes_and_the_loss_falls_frozen_one_stays() -> None:
    from recwise.models.geo.location import LocationEncoder, project

    rng = np.random.default_rng(0)
    latlon = np.column_stack([rng.uniform(-60, 70, 256), rng.uniform(-180, 180, 256)])
    z = np.column_stack([np.sin(np.deg2rad(latlon[:, 0])), np.cos(np.deg2rad(latlon[:, 1])),
                         np.sin(np.deg2rad(latlon[:, 1]))])
    q = np.tanh(z @ rng.normal(size=(3, 32))).astype(np.float32)
    t = np.tanh(z @ rng.normal(size=(3, 24))).astype(np.float32)
    torch.manual_seed(0)
    enc = LocationEncoder("mercator")
    before = _encoder_state(enc)
    heads = GeoAligner(32, 24, location_encoder=enc)
    cfg = AlignConfig(lr=1e-3, epochs=8, batch_size=64)
    assert cfg.location == "trained"  # the released default
    hist = train_alignment(heads, q, t, project(latlon, "mercator"), cfg, seed=0)
    assert hist["loss"][-1] < hist["loss"][0] * 0.8
    after = enc.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.endswith("mlp.0.weight") for k in changed) and any(k.endswith("head.weight") for k in changed)
    assert not any(k.endswith(".b") for k in changed)  # the Fourier matrices are fixed, as released
    assert {n for n, _ in heads.named_parameters()} >= {f"location_encoder.{k}" for k in changed}

    # frozen: the encoder's features are given; training leaves it as it was
    torch.manual_seed(0)
    frozen_enc = LocationEncoder("mercator")
    snapshot = _encoder_state(frozen_enc)
    frozen = GeoAligner(32, 24)
    fcfg = AlignConfig(lr=1e-3, epochs=8, batch_size=64, location="frozen")
    fhist = train_alignment(frozen, q, t, frozen_enc.encode(latlon), fcfg, seed=0)
    assert fhist["loss"][-1] < fhist["loss"][0]
    assert all(torch.equal(snapshot[k], v) for k, v in frozen_enc.state_dict().items())
    assert not any(n.startswith("location_encoder") for n, _ in frozen.named_parameters())
    # the two modes refuse each other's inputs
    with pytest.raises(ConfigError, match="align.location"):
        train_alignment(frozen, q, t, frozen_enc.encode(latlon), cfg, seed=0)
    with pytest.raises(ConfigError, match="width 2"):
        train_alignment(heads, q, t, frozen_enc.encode(latlon), cfg, seed=0)
    with pytest.raises(ConfigError, match="align.location"):
        AlignConfig(location="fine-tuned")  # type: ignore[arg-type]


def test_bf16_keeps_the_fourier_phases_float32_and_the_alignment_trains() -> None:
    from recwise.models.geo.location import LocationEncoder, project

    rng = np.random.default_rng(1)
    latlon = np.column_stack([rng.uniform(-60, 70, 256), rng.uniform(-180, 180, 256)])
    xy = torch.from_numpy(project(latlon, "mercator")).float()
    torch.manual_seed(0)
    enc = LocationEncoder("mercator")
    with torch.no_grad():
        ref = enc.encode_projected(xy)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = enc.encode_projected(xy).float()
        # what a bfloat16 phase gives at GeoCLIP's finest scale (2^8): unrelated features
        cap = enc.capsules[-1]
        vp = (2 * np.pi * xy.bfloat16() @ cap.b.T.bfloat16()).float()
        exact = 2 * np.pi * xy @ cap.b.T
        bad_cos = torch.nn.functional.cosine_similarity(torch.cos(vp), torch.cos(exact), dim=-1).mean()
    cos = torch.nn.functional.cosine_similarity(low, ref, dim=-1)
    assert cos.min() > 0.99 and not torch.equal(low, ref)  # the MLP ran in bf16, the phases did not
    assert bad_cos < 0.5  # so the guard matters

    z = np.column_stack([np.sin(np.deg2rad(latlon[:, 0])), np.cos(np.deg2rad(latlon[:, 1]))])
    q = np.tanh(z @ rng.normal(size=(2, 32))).astype(np.float32)
    t = np.tanh(z @ rng.normal(size=(2, 24))).astype(np.float32)
    heads = GeoAligner(32, 24, location_encoder=enc)
    hist = train_alignment(heads, q, t, project(latlon, "mercator"),
                           AlignConfig(lr=1e-3, epochs=6, batch_size=64, precision="bf16"), seed=0)
    assert hist["loss"][-1] < hist["loss"][0] * 0.8
    assert all(p.dtype == torch.float32 for p in heads.parameters())  # master weights stay float32
    with pytest.raises(ConfigError, match="align.precision"):
        AlignConfig(precision="fp16")  # type: ignore[arg-type]
