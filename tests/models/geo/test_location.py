"""GeoCLIP's location encoder: projections, and the released weights reproduce the released embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwise.errors import CheckpointError, ConfigError
from recwise.models.geo.location import LocationEncoder, default_weights_path, equal_earth, mercator, project

POINTS = [[48.8566, 2.3522], [-33.8688, 151.2093], [40.7128, -74.0060], [0.0, 0.0]]
# computed with geoclip 1.3.0's own LocationEncoder (its location_encoder.py and rff/ from the wheel,
# loaded without the package __init__, which imports torchvision), equal-earth input, float32
GEOCLIP_FIRST4 = [[-0.013068, 0.007398, -0.006526, 0.007471],
                  [-0.017934, 0.013718, 0.008315, -0.014337],
                  [-0.010393, 0.007885, 0.013026, 0.002850],
                  [0.004656, 0.000691, 0.007355, -0.001512]]
GEOCLIP_NORM = [0.240073, 0.271921, 0.224342, 0.395226]
GEOCLIP_SUM = [0.062412, -0.569744, -0.239277, -0.126459]

needs_weights = pytest.mark.skipif(not default_weights_path().is_file(),
                                   reason="GeoCLIP weights not extracted (scripts/setup.sh)")


def test_mercator_is_web_mercator_over_half_width_as_y_x() -> None:
    lat, lon = 48.8566, 2.3522
    xy = mercator(np.array([[lat, lon]]))[0]
    y = np.log(np.tan(np.pi / 4 + np.deg2rad(lat) / 2)) / np.pi  # R ln tan(pi/4 + phi/2) / (R pi)
    assert xy[0] == pytest.approx(y, abs=1e-6)
    assert xy[1] == pytest.approx(lon / 180, abs=1e-6)
    # the poles are clipped to Web-Mercator's edge (finite), not infinite
    assert np.isfinite(mercator(np.array([[90.0, 0.0], [-90.0, 0.0]]))).all()


def test_equal_earth_is_symmetric_and_bounded() -> None:
    xy = equal_earth(np.array([[10.0, 20.0], [-10.0, -20.0], [0.0, 180.0]]))
    np.testing.assert_allclose(xy[0], -xy[1], atol=1e-7)
    assert xy[2, 1] == 0.0 and xy[2, 0] > 0
    with pytest.raises(ConfigError, match="projection"):
        project(np.zeros((1, 2)), "lambert")


@needs_weights
def test_pretrained_weights_reproduce_geoclips_embeddings() -> None:
    enc = LocationEncoder.pretrained(projection="equal-earth")
    out = enc.encode(np.array(POINTS))
    assert out.shape == (4, 512)
    np.testing.assert_allclose(out[:, :4], GEOCLIP_FIRST4, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), GEOCLIP_NORM, rtol=1e-3)
    np.testing.assert_allclose(out.sum(axis=1), GEOCLIP_SUM, atol=2e-3)
    # the module forward (tensor in) and the batched numpy path agree
    with torch.no_grad():
        np.testing.assert_allclose(enc(torch.tensor(POINTS, dtype=torch.float64)).numpy(), out, atol=1e-6)


@needs_weights
def test_pretrained_encoder_separates_far_places_more_than_near_ones() -> None:
    enc = LocationEncoder.pretrained()  # Mercator input (G3), GeoCLIP's weights
    v = enc.encode(np.array([[48.85, 2.35], [48.86, 2.36], [-33.87, 151.21]]))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_a_file_that_is_not_geoclips_is_one_error(tmp_path) -> None:  # noqa: ANN001
    bad = tmp_path / "w.pth"
    torch.save({"something": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match=r"w\.pth: no tensor 'LocEnc0\.capsule\.0\.b'"):
        LocationEncoder().load_geoclip(bad)
    with pytest.raises(CheckpointError, match="missing"):
        LocationEncoder().load_geoclip(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        LocationEncoder().load_geoclip(tmp_path / "junk.pth")
