"""Geolocalization models (G3): GeoCLIP's location encoder and G3's alignment heads."""

from __future__ import annotations

from recwise.models.geo.location import PROJECTIONS, LocationEncoder, default_weights_path, project

__all__ = ["PROJECTIONS", "LocationEncoder", "default_weights_path", "project"]
