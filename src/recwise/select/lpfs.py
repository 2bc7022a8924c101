"""LPFS (gate family): a polarizing smoothed-L0 gate per field with a proximal step.

As released in ERASE (``models/fs/lpfs.py``, ``utils/fs_trainer.py``):

- one scalar ``x_f`` per field, initialised to 1; the field's gate is
  ``g(x) = sign(x) * x^2 / (x^2 + eps) + alpha * eps^(1/tau) * atan(x)`` with ``alpha=10``,
  ``tau=2`` (divided by ``init_val=1``), multiplied into the field's embedding row;
- ``eps`` starts at 0.1 and is multiplied by 0.9978 at every forward whose batch index is a
  multiple of 100 (0, 100, ...), evaluation passes included (their batch index counts from 0);
- ``x`` is trained by its own Adam (same learning rate as the backbone) after every batch,
  followed by a proximal soft-threshold: ``|x| <= thr`` -> 0, else ``x -= sign(x) * thr`` with
  ``thr = 0.01 * lr``;
- the ranking is ``x`` itself (descending).

Retrain: the released retrain keeps a fresh LPFS module in the model (its ``mode`` is never
read), i.e. the top-k backbone is retrained with a new gate searched again from ``x = 1``. The
recwise protocol retrains the plain backbone on the top-k fields, as for the other selectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recwise.data.table import Batch, Table
from recwise.errors import ConfigError
from recwise.select._gated import Gate, GatedModel, search_fit
from recwise.select.base import FieldSelector, register_selector, require_valid

__all__ = ["LPFS", "LPFSConfig", "LPFSGate", "lpfs_gate"]


@dataclass(frozen=True)
class LPFSConfig:
    """LPFS's options (defaults as released).

    Parameters
    ----------
    eps_init, eps_decay : float, default 0.1, 0.9978
        ``eps`` starts at ``eps_init`` and is multiplied by ``eps_decay`` every
        ``eps_update_frequency`` batch indices.
    eps_update_frequency : int, default 100
    alpha, tau : float, default 10, 2
        Weight and root of the ``atan`` term.
    x_init : float, default 1.0
    prox_factor : float, default 0.01
        Proximal threshold = ``prox_factor * lr``.
    """

    eps_init: float = 0.1
    eps_decay: float = 0.9978
    eps_update_frequency: int = 100
    alpha: float = 10.0
    tau: float = 2.0
    x_init: float = 1.0
    prox_factor: float = 0.01

    def __post_init__(self) -> None:
        if self.eps_init <= 0 or not 0 < self.eps_decay <= 1:
            raise ConfigError(f"options 'method.eps_init' must be > 0 and 'eps_decay' in (0, 1]; got "
                              f"{self.eps_init}/{self.eps_decay}")
        if self.eps_update_frequency < 1:
            raise ConfigError(f"option 'method.eps_update_frequency' must be >= 1; got {self.eps_update_frequency}")


def lpfs_gate(x: torch.Tensor, eps: float, alpha: float = 10.0, tau: float = 2.0,
              init_val: float = 1.0) -> torch.Tensor:
    """The polarizing gate ``sign(x) x^2/(x^2+eps) + alpha eps^(1/tau) atan(x)`` (``/init_val``)."""
    smooth_l0 = x * x / (x * x + eps)
    slope = alpha * eps ** (1.0 / tau) * torch.atan(x)
    return torch.where(x > 0, slope + smooth_l0, slope - smooth_l0) / init_val


class LPFSGate(Gate):
    def __init__(self, n_fields: int, config: LPFSConfig) -> None:
        super().__init__()
        self.config = config
        self.x = nn.Parameter(torch.full((n_fields,), float(config.x_init)))
        self.eps = float(config.eps_init)
        self.eps_updates = 0

    def tick(self) -> None:
        if self.step % self.config.eps_update_frequency == 0:
            self.eps *= self.config.eps_decay
            self.eps_updates += 1

    def forward(self, emb: torch.Tensor, batch: Batch) -> torch.Tensor:
        self.tick()
        g = lpfs_gate(self.x, self.eps, self.config.alpha, self.config.tau)
        return emb * g.view(1, -1, 1)

    def fs_parameters(self) -> list[nn.Parameter]:
        return [self.x]

    def proximal(self, lr: float) -> None:
        thr = self.config.prox_factor * lr
        x = self.x.data
        x.copy_(torch.where(x > thr, x - thr, torch.where(x < -thr, x + thr, torch.zeros_like(x))))


@register_selector("lpfs")
class LPFS(FieldSelector):
    """LPFS: scores = the trained gate parameter ``x`` of each field.

    After ``fit``: ``model_``, ``search_``, ``eps_`` (epsilon at the end) and ``gate_values_``
    (``g(x)`` at the final epsilon).
    """

    Config = LPFSConfig
    family = "gate"
    uses_backbone = True

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        require_valid(self.name, valid)
        assert valid is not None
        backbone = self.build_backbone(train.schema)
        gate = LPFSGate(len(self.fields_), self.config)
        model = GatedModel(backbone, gate)
        self.search_ = search_fit(model, train.tensors(), valid.tensors(), self.train_config, fs_mode="proximal")
        self.model_ = model
        self.eps_ = gate.eps
        x = gate.x.detach().cpu()
        self.gate_values_ = lpfs_gate(x, gate.eps, self.config.alpha, self.config.tau).numpy().astype(np.float64)
        scores = x.numpy().astype(np.float64)
        if not np.all(np.isfinite(scores)):  # pragma: no cover - a diverged search
            raise FloatingPointError(f"LPFS search diverged: x = {scores}")
        return scores


def eps_after(n_updates: int, config: LPFSConfig = LPFSConfig()) -> float:
    """``eps`` after ``n_updates`` decays (for checking the schedule)."""
    return config.eps_init * math.pow(config.eps_decay, n_updates)
