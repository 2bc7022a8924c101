"""GeoCLIP's location encoder (Vivanco Cepeda et al., NeurIPS 2023), as G3 (NeurIPS 2024) uses it.

A (lat, lon) pair is projected to the plane, then three *capsules* each map it through random
Fourier features at one scale (sigma = 2^0, 2^4, 2^8: continent to street level) and an MLP
512 -> 1024 -> 1024 -> 1024 -> 512; the three outputs are summed (B, 512).

Projections (both as released):

- ``mercator`` (G3): pyproj EPSG:4326 -> EPSG:3857, divided by 20037508.3427892, fed as (y, x);
  latitudes are clipped to +-85.0511 (Web-Mercator's edge, where y would be infinite).
- ``equal-earth`` (GeoCLIP): the Equal Earth formula with GeoCLIP's scale 66.50336 / 180, fed as (x, y).

The pretrained weights ship in the ``geoclip`` 1.3.0 wheel
(``geoclip/model/weights/location_encoder_weights.pth``, trained on the equal-earth input);
``scripts/setup.sh`` extracts them into ``$RECWISE_HOME/geoclip/``. They are read with
``torch.load(weights_only=True)`` into this module (the geoclip package itself imports torchvision).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from recwise.errors import CheckpointError, ConfigError, DependencyError

__all__ = ["PROJECTIONS", "SIGMAS", "LocationEncoder", "default_weights_path", "equal_earth", "mercator", "project"]

SIGMAS = (2.0**0, 2.0**4, 2.0**8)
PROJECTIONS = ("mercator", "equal-earth")
MERCATOR_HALF_WIDTH = 20037508.3427892  # metres from the meridian to the antimeridian in EPSG:3857
MERCATOR_MAX_LAT = 85.05112878
# Equal Earth polynomial (Savric, Patterson, Jenny 2018) and GeoCLIP's scale factor
_A1, _A2, _A3, _A4, _SF = 1.340264, -0.081106, 0.000893, 0.003796, 66.50336

Projection = Literal["mercator", "equal-earth"]


def mercator(latlon: np.ndarray) -> np.ndarray:
    """(N, 2) degrees -> (N, 2) Web-Mercator (y, x) / half width, through pyproj as G3 does."""
    latlon = np.asarray(latlon, dtype=np.float64)
    lat = np.clip(latlon[:, 0], -MERCATOR_MAX_LAT, MERCATOR_MAX_LAT)
    x, y = _mercator_transformer().transform(latlon[:, 1], lat)
    return (np.stack([y, x], axis=1) / MERCATOR_HALF_WIDTH).astype(np.float32)


_TRANSFORMER: object | None = None


def _mercator_transformer():  # noqa: ANN202 (pyproj.Transformer, imported lazily)
    global _TRANSFORMER
    if _TRANSFORMER is None:
        try:
            from pyproj import Transformer
        except ImportError:
            raise DependencyError("the Mercator projection needs pyproj: pip install 'recwise[geo]'") from None

        _TRANSFORMER = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    return _TRANSFORMER


def equal_earth(latlon: np.ndarray) -> np.ndarray:
    """(N, 2) degrees -> (N, 2) Equal Earth (x, y) * 66.50336 / 180, GeoCLIP's input."""
    latlon = np.asarray(latlon, dtype=np.float64)
    lat, lon = np.deg2rad(latlon[:, 0]), np.deg2rad(latlon[:, 1])
    theta = np.arcsin(np.sqrt(3.0) / 2 * np.sin(lat))
    denom = 3 * (9 * _A4 * theta**8 + 7 * _A3 * theta**6 + 3 * _A2 * theta**2 + _A1)
    x = 2 * np.sqrt(3.0) * lon * np.cos(theta) / denom
    y = _A4 * theta**9 + _A3 * theta**7 + _A2 * theta**3 + _A1 * theta
    return (np.stack([x, y], axis=1) * _SF / 180).astype(np.float32)


def project(latlon: np.ndarray, projection: str) -> np.ndarray:
    """Degrees -> the encoder's planar input under ``projection`` (``mercator`` or ``equal-earth``)."""
    if projection == "mercator":
        return mercator(latlon)
    if projection == "equal-earth":
        return equal_earth(latlon)
    raise ConfigError(f"option 'projection' must be one of {', '.join(PROJECTIONS)}; got {projection!r}")


def default_weights_path() -> Path:
    """``$RECWISE_HOME/geoclip/location_encoder_weights.pth`` (written by scripts/setup.sh)."""
    home = Path(os.environ.get("RECWISE_HOME", Path.home() / ".cache" / "recwise"))
    return home / "geoclip" / "location_encoder_weights.pth"


class _Capsule(nn.Module):
    """Random Fourier features at one scale, then an MLP (GeoCLIP's ``LocationEncoderCapsule``)."""

    b: torch.Tensor

    def __init__(self, sigma: float, *, features: int = 256, hidden: int = 1024, out: int = 512) -> None:
        super().__init__()
        self.sigma = sigma
        # b ~ N(0, sigma^2), fixed; the pretrained file holds GeoCLIP's draw
        self.register_buffer("b", torch.randn(features, 2) * sigma)
        self.mlp = nn.Sequential(nn.Linear(2 * features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, out)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:  # (B, 2) -> (B, out)
        # the Fourier phases stay float32 under autocast: at scale 2^8 a bfloat16 product (8-bit
        # mantissa) would lose the phase; only the MLP after them may run in lower precision
        with torch.autocast(xy.device.type, enabled=False):
            vp = 2 * np.pi * xy.float() @ self.b.T  # (B, features)
            feats = torch.cat([torch.cos(vp), torch.sin(vp)], dim=-1)
        return self.head(self.mlp(feats))


class LocationEncoder(nn.Module):
    """GeoCLIP's location encoder: ``forward(latlon degrees (B, 2)) -> (B, 512)``.

    Args:
        projection: ``mercator`` (G3, default) or ``equal-earth`` (GeoCLIP's own).
        sigmas: the Fourier scales, one capsule each.

    Example::

        enc = LocationEncoder.pretrained()                          # GeoCLIP's weights
        enc(torch.tensor([[48.8566, 2.3522]])).shape                # (1, 512)
    """

    def __init__(self, projection: Projection = "mercator", sigmas: tuple[float, ...] = SIGMAS) -> None:
        super().__init__()
        if projection not in PROJECTIONS:
            raise ConfigError(f"option 'projection' must be one of {', '.join(PROJECTIONS)}; got {projection!r}")
        self.projection = projection
        self.capsules = nn.ModuleList(_Capsule(s) for s in sigmas)

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        xy = torch.from_numpy(project(latlon.detach().cpu().numpy(), self.projection)).to(latlon.device)
        return self.encode_projected(xy)

    def encode_projected(self, xy: torch.Tensor) -> torch.Tensor:
        """The planar input (B, 2) -> (B, 512): the capsules' outputs summed."""
        out = self.capsules[0](xy)
        for capsule in self.capsules[1:]:
            out = out + capsule(xy)
        return out

    @torch.no_grad()
    def encode(self, latlon: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
        """(N, 2) degrees -> (N, 512) float32 numpy, in batches, no gradients."""
        latlon = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        xy = torch.from_numpy(project(latlon, self.projection))
        parts = [self.encode_projected(xy[i:i + batch_size]) for i in range(0, len(xy), batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, 512), np.float32)

    def load_geoclip(self, path: str | Path | None = None) -> LocationEncoder:
        """Read GeoCLIP's released state dict (``LocEnc{i}.capsule.{0,1,3,5}``, ``LocEnc{i}.head.0``)."""
        path = Path(path) if path is not None else default_weights_path()
        if not path.is_file():
            raise CheckpointError(f"{path}: GeoCLIP's location-encoder weights are missing; run scripts/setup.sh "
                                  "(it extracts them from the geoclip 1.3.0 wheel) or pass the file's path")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 (any unpickling failure is a bad file)
            raise CheckpointError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
        ours = {}
        for i, capsule in enumerate(self.capsules):
            src = f"LocEnc{i}."
            names = {"b": "capsule.0.b", "mlp.0.weight": "capsule.1.weight", "mlp.0.bias": "capsule.1.bias",
                     "mlp.2.weight": "capsule.3.weight", "mlp.2.bias": "capsule.3.bias",
                     "mlp.4.weight": "capsule.5.weight", "mlp.4.bias": "capsule.5.bias",
                     "head.weight": "head.0.weight", "head.bias": "head.0.bias"}
            for mine, theirs in names.items():
                key = src + theirs
                if key not in state:
                    raise CheckpointError(f"{path}: no tensor {key!r}; is this GeoCLIP's location_encoder_weights.pth?")
                ours[f"capsules.{i}.{mine}"] = state[key]
            if not torch.allclose(state[src + "capsule.0.b"].std(), torch.tensor(capsule.sigma), rtol=0.2):
                raise CheckpointError(f"{path}: capsule {i}'s Fourier matrix does not have scale {capsule.sigma}")
        try:
            self.load_state_dict(ours, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: shapes do not match GeoCLIP's encoder ({exc})") from None
        return self

    @classmethod
    def pretrained(cls, path: str | Path | None = None, *, projection: Projection = "mercator") -> LocationEncoder:
        """GeoCLIP's pretrained encoder, in eval mode."""
        return cls(projection).load_geoclip(path).eval()
