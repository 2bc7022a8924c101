"""Geodesic errors and accuracy at 1/25/200/750/2500 km."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.errors import ConfigError, DataError
from recwise.metrics.geo import THRESHOLDS_KM, accuracy_at, check_latlon, distances_km


def test_paris_london_and_antipodes() -> None:
    true = [[48.8566, 2.3522], [0.0, 0.0]]
    pred = [[51.5074, -0.1278], [0.0, 180.0]]
    geo = distances_km(true, pred)
    hav = distances_km(true, pred, method="haversine")
    assert geo[0] == pytest.approx(343.9, abs=1.0)
    assert hav[1] == pytest.approx(np.pi * 6371.0088, rel=1e-6)  # half a great circle
    assert geo[1] == pytest.approx(20003.9, abs=1.0)  # half the equator on WGS-84 (geodesic along it)
    np.testing.assert_allclose(geo, hav, rtol=6e-3)


def test_accuracy_counts_errors_at_or_below_each_threshold() -> None:
    d = np.array([0.5, 1.0, 24.0, 200.0, 760.0, 3000.0])
    acc = accuracy_at(d)
    assert list(acc) == [f"km={k}" for k in THRESHOLDS_KM]
    assert acc == {"km=1": 2 / 6, "km=25": 3 / 6, "km=200": 4 / 6, "km=750": 4 / 6, "km=2500": 5 / 6}


def test_bad_inputs_are_one_error_naming_the_row() -> None:
    with pytest.raises(DataError, match=r"row 1 has \(lat, lon\) = \(91.0, 0.0\)"):
        check_latlon([[0, 0], [91, 0]], "pred")
    with pytest.raises(DataError, match=r"predicted coordinates: row 0 .*longitude in \[-180, 180\]"):
        distances_km([[0, 0]], [[0, 181]])
    with pytest.raises(DataError, match="differ in length"):
        distances_km([[0, 0]], [[0, 0], [1, 1]])
    with pytest.raises(ConfigError, match="distance"):
        distances_km([[0, 0]], [[0, 0]], method="manhattan")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="zero predictions"):
        accuracy_at(np.array([]))
