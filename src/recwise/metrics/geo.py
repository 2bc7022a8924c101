"""Geolocalization metrics: great-circle errors and the accuracy within 1/25/200/750/2500 km.

The thresholds are the street / city / region / country / continent levels of IM2GPS (Hays &
Efros 2008) that G3 and GeoCLIP report. Distances come from well-kept libraries:

- ``geodesic`` (default, as G3's evaluation): geopy's geodesic on the WGS-84 ellipsoid (Karney),
  one pair at a time;
- ``haversine``: the ``haversine`` package's vectorised great circle on a sphere of radius 6371.0088 km
  (differs from the geodesic by up to about 0.5 %; never changes a threshold decision by more than that).

Examples
--------
>>> d = distances_km([[48.8566, 2.3522]], [[51.5074, -0.1278]], method="haversine")
>>> round(float(d[0]))
344
>>> accuracy_at(np.array([0.5, 30.0, 3000.0]))["km=25"]
0.3333333333333333
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from recwise.errors import ConfigError, DataError, DependencyError

__all__ = ["THRESHOLDS_KM", "accuracy_at", "check_latlon", "distances_km", "segment_name"]

THRESHOLDS_KM = (1, 25, 200, 750, 2500)


def segment_name(km: float) -> str:
    """``km=25``: the results-row segment of one threshold."""
    return f"km={km:g}"


def check_latlon(latlon: Any, what: str = "coordinates") -> np.ndarray:
    """``(N, 2)`` float64 degrees, every latitude in [-90, 90] and longitude in [-180, 180], else a DataError."""
    a = np.asarray(latlon, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise DataError(f"{what}: expected an (N, 2) array of (lat, lon); got shape {a.shape}")
    bad = ~np.isfinite(a).all(axis=1) | (np.abs(a[:, 0]) > 90) | (np.abs(a[:, 1]) > 180)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{what}: row {i} has (lat, lon) = ({a[i, 0]}, {a[i, 1]}); "
                        "latitude must be in [-90, 90] and longitude in [-180, 180]")
    return a


def distances_km(true: Any, pred: Any, *, method: Literal["geodesic", "haversine"] = "geodesic") -> np.ndarray:
    """Great-circle error in km per row of two ``(N, 2)`` (lat, lon) arrays."""
    t, p = check_latlon(true, "true coordinates"), check_latlon(pred, "predicted coordinates")
    if t.shape != p.shape:
        raise DataError(f"true and predicted coordinates differ in length: {len(t)} vs {len(p)}")
    if method == "haversine":
        try:
            from haversine import Unit, haversine_vector  # type: ignore[import-untyped]
        except ImportError:
            raise DependencyError("haversine distances need haversine: pip install 'recwise[geo]'") from None
        if len(t) == 0:
            return np.zeros(0)
        return np.asarray(haversine_vector(t, p, Unit.KILOMETERS), dtype=np.float64)
    if method == "geodesic":
        try:
            from geopy.distance import geodesic  # type: ignore[import-untyped]
        except ImportError:
            raise DependencyError("geodesic distances need geopy: pip install 'recwise[geo]'") from None
        return np.array([geodesic(a, b).km for a, b in zip(t.tolist(), p.tolist())], dtype=np.float64)
    raise ConfigError(f"option 'distance' must be 'geodesic' or 'haversine'; got {method!r}")


def accuracy_at(dist_km: np.ndarray, thresholds: Sequence[float] = THRESHOLDS_KM) -> dict[str, float]:
    """Share of rows whose error is at most each threshold: ``{"km=1": ..., ..., "km=2500": ...}``."""
    d = np.asarray(dist_km, dtype=np.float64)
    if d.size == 0:
        raise DataError("accuracy over zero predictions is undefined")
    if not thresholds or any(not (k > 0) for k in thresholds):
        raise ConfigError(f"thresholds must be positive km; got {list(thresholds)}")
    return {segment_name(k): float(np.mean(d <= k)) for k in thresholds}
