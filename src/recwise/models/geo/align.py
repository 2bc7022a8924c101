"""G3's geo-alignment (Jia et al., NeurIPS 2024, ``utils/G3.py``): trainable heads and two CLIP losses.

A query embedding ``q`` (a frozen image tower's, or here a frozen text encoder's) is mapped by two
heads, each ``Linear -> ReLU -> Linear``: ``query_to_text`` into the space of the texts
"{city}, {region}, {country}" (their frozen embeddings through ``text_head``) and ``query_to_gps``
into the space of GPS (GeoCLIP's location encoder through ``location_head``).
Loss = symmetric CLIP loss(query, text) + symmetric CLIP loss(query, GPS), each with its own
learnable temperature (initialised to 3.99 as released, i.e. logits x e^3.99 ~ 54).

Defaults are the released training settings: AdamW lr 3e-5, weight decay 1e-6, StepLR gamma 0.87
per epoch, batch 256, 10 epochs, float32, and ``location="trained"``: as in the release (``run_G3.py`` puts
every parameter with ``requires_grad`` in AdamW; only CLIP's towers are frozen), the location
encoder starts from GeoCLIP's weights and is trained with the heads (its random Fourier matrices
stay fixed: they are buffers). ``location="frozen"`` keeps GeoCLIP's encoder as loaded: its 512-d
features are computed once and only the heads train (several times cheaper on a CPU).
``precision="bf16"`` (ours, opt-in) runs the training forward passes under bfloat16 autocast (CPUs
with AMX, GPUs); the master weights, the optimizer and the Fourier phases stay float32, and the
database and verification encode in float32 as before.

Example::

    heads = GeoAligner(query_dim=384, text_dim=384, location_encoder=LocationEncoder.pretrained())
    history = train_alignment(heads, q, t, project(latlon, "mercator"), AlignConfig(epochs=1), seed=0)
    db = heads.database_embedding(torch.from_numpy(q))     # (N, 3 * 384): [q, q->text, q->gps], each unit
    feats = heads.location_encoder.encode(candidates)       # the trained encoder, for verification

    frozen = GeoAligner(384, 384)                           # location="frozen": features given
    train_alignment(frozen, q, t, LocationEncoder.pretrained().encode(latlon), AlignConfig(location="frozen"), seed=0)
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recwise.errors import ConfigError

if TYPE_CHECKING:
    from recwise.models.geo.location import LocationEncoder

__all__ = ["AlignConfig", "GeoAligner", "clip_loss", "train_alignment"]


@dataclass(frozen=True)
class AlignConfig:
    """Alignment training (released defaults).

    location : ``trained`` (released: GeoCLIP's encoder is fine-tuned with the heads) or
        ``frozen`` (its features computed once; only the heads train).
    precision : ``fp32`` (released) or ``bf16``: the training forward passes under bfloat16 autocast.
    """

    lr: float = 3e-5
    weight_decay: float = 1e-6
    gamma: float = 0.87  # StepLR factor per epoch
    batch_size: int = 256
    epochs: int = 10
    location: Literal["trained", "frozen"] = "trained"
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        if self.location not in ("trained", "frozen"):
            raise ConfigError(f"option 'align.location' must be 'trained' or 'frozen'; got {self.location!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"option 'align.precision' must be 'fp32' or 'bf16'; got {self.precision!r}")
        for name in ("lr", "gamma"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"option 'align.{name}' must be a number > 0; got {v!r}")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, int | float) \
                or self.weight_decay < 0:
            raise ConfigError(f"option 'align.weight_decay' must be a number >= 0; got {self.weight_decay!r}")
        for name in ("batch_size", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (2 if name == "batch_size" else 0):
                raise ConfigError(f"option 'align.{name}' must be an int >= {2 if name == 'batch_size' else 0}; "
                                  f"got {v!r}")


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of unit rows: row i of ``a`` matches row i of ``b``."""
    logits = logit_scale.exp() * a @ b.T  # (B, B)
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _head(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


class GeoAligner(nn.Module):
    """The four heads and two temperatures of G3's alignment.

    Args:
        query_dim: the query encoder's width (768 for CLIP ViT-L/14's projection, 384 for MiniLM).
        text_dim: the text encoder's width.
        location_dim: the location encoder's width (512, GeoCLIP).
        location_encoder: a :class:`~recwise.models.geo.location.LocationEncoder` to train with the
            heads (``align.location=trained``); the losses then take its planar input (N, 2), not
            its features. ``None``: frozen, the losses take precomputed features (N, 512).
    """

    def __init__(self, query_dim: int, text_dim: int, location_dim: int = 512,
                 location_encoder: LocationEncoder | None = None) -> None:
        super().__init__()
        self.location_encoder = location_encoder
        self.location_dim = location_dim
        self.query_to_text = _head(query_dim, query_dim, query_dim)
        self.text_head = _head(text_dim, text_dim, query_dim)
        self.query_to_gps = _head(query_dim, query_dim, query_dim)
        self.location_head = _head(location_dim, location_dim, query_dim)
        self.logit_scale_text = nn.Parameter(torch.tensor(3.99))
        self.logit_scale_gps = nn.Parameter(torch.tensor(3.99))

    def loss(self, query: torch.Tensor, text: torch.Tensor, location: torch.Tensor) -> torch.Tensor:
        """(B, q), (B, t), location -> CLIP(query, text) + CLIP(query, GPS). ``location`` is the
        encoder's planar input (B, 2) with a trained encoder, its features (B, 512) when frozen."""
        if self.location_encoder is not None:
            location = self.location_encoder.encode_projected(location)
        loss_text = clip_loss(F.normalize(self.query_to_text(query), dim=-1),
                              F.normalize(self.text_head(text), dim=-1), self.logit_scale_text)
        loss_gps = clip_loss(F.normalize(self.query_to_gps(query), dim=-1),
                             F.normalize(self.location_head(location), dim=-1), self.logit_scale_gps)
        return loss_text + loss_gps

    def gps_space(self, query: torch.Tensor) -> torch.Tensor:
        """Queries in the GPS space, unit rows (B, q): what verification compares candidates with."""
        return F.normalize(self.query_to_gps(query), dim=-1)

    def location_space(self, location: torch.Tensor) -> torch.Tensor:
        """Location-encoder features (..., 512) in the GPS space, unit rows."""
        return F.normalize(self.location_head(location), dim=-1)

    def database_embedding(self, query: torch.Tensor) -> torch.Tensor:
        """G3's database / search vector: [query, query->text, query->gps], each L2-normalised (B, 3q)."""
        return torch.cat([F.normalize(query, dim=-1), F.normalize(self.query_to_text(query), dim=-1),
                          self.gps_space(query)], dim=-1)

    @torch.no_grad()
    def verify(self, query: torch.Tensor, candidate_locations: torch.Tensor,
               valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Geo-verification: cosine of each query's GPS-space vector with each of its candidates.

        Args:
            query: (B, q) query embeddings.
            candidate_locations: (B, C, 512) location-encoder features of the candidates.
            valid: (B, C) bool; invalid candidates never win (a row with none gets index 0).

        Returns:
            (scores (B, C), best index (B,)).
        """
        q = self.gps_space(query)  # (B, d)
        c = self.location_space(candidate_locations)  # (B, C, d)
        scores = torch.einsum("bd,bcd->bc", q, c)
        if valid is not None:
            scores = scores.masked_fill(~valid, float("-inf"))
        best = scores.argmax(dim=1)
        if valid is not None:
            best = torch.where(valid.any(dim=1), best, torch.zeros_like(best))
        return scores, best


def train_alignment(model: GeoAligner, query: np.ndarray, text: np.ndarray, location: np.ndarray,
                    config: AlignConfig, *, seed: int, progress: bool = False) -> dict[str, list[float]]:
    """Train on aligned rows of (query, text, location); return per-epoch loss and seconds.

    ``location``: the features (N, 512) of a frozen encoder (``config.location == "frozen"``, the
    model has no encoder), or the planar input (N, 2) of the encoder the model trains (``trained``).
    """
    trained = model.location_encoder is not None
    if trained != (config.location == "trained"):
        raise ConfigError(f"option 'align.location' is {config.location!r} but the model "
                          f"{'has' if trained else 'has no'} location encoder to train")
    want = 2 if trained else model.location_dim
    if np.ndim(location) != 2 or np.shape(location)[1] != want:
        raise ConfigError(f"alignment with a {config.location} location encoder needs location rows of width {want} "
                          f"({'planar coordinates' if trained else 'encoder features'}); got shape "
                          f"{tuple(np.shape(location))}")
    n = len(query)
    if not (len(text) == len(location) == n) or n < 2:
        raise ConfigError(f"alignment needs >= 2 aligned rows; got {n} queries, {len(text)} texts, "
                          f"{len(location)} locations")
    q, t, loc = (torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32) for a in (query, text, location))
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device.type
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if config.precision == "bf16" else nullcontext
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=config.gamma)
    history: dict[str, list[float]] = {"loss": [], "seconds": []}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.epochs, desc="align", unit="epoch")
    model.train()
    for _ in range(config.epochs):
        start, total, steps = time.perf_counter(), 0.0, 0
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - 1, config.batch_size):
            idx = perm[i:i + config.batch_size]
            if len(idx) < 2:  # a CLIP loss needs negatives
                continue
            with autocast():
                loss = model.loss(q[idx], t[idx], loc[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + float(loss.detach()), steps + 1
        sched.step()
        history["loss"].append(total / max(steps, 1))
        history["seconds"].append(time.perf_counter() - start)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return history
