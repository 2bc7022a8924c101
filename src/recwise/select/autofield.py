"""AutoField (gate family): a Gumbel-softmax keep/drop gate per field, searched DARTS-style.

As released in ERASE (``models/fs/autofield.py``, ``utils/fs_trainer.py``):

- each field has two logits, both initialised to 0.5; the field's gate is the second ("keep")
  component of ``gumbel_softmax(logits, tau)``, multiplied into that field's embedding row;
- ``tau`` starts at 1.0 and drops by 5e-5 at every forward while it is above 0.01 (evaluation
  passes count too, as in the released code, where the module stays in its search mode);
- the gate logits are trained only by their own Adam, on one validation batch every
  ``update_frequency`` (10) training batches (batch indices 0, 10, 20, ...); the backbone's Adam
  never touches them;
- the ranking is the "keep" logit; at retrain the gate is removed (the protocol retrains the
  plain backbone on the top-k fields).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recwise.data.table import Batch, Table
from recwise.errors import ConfigError
from recwise.select._gated import Gate, GatedModel, search_fit
from recwise.select.base import FieldSelector, register_selector, require_valid

__all__ = ["AutoField", "AutoFieldConfig", "AutoFieldGate"]


@dataclass(frozen=True)
class AutoFieldConfig:
    """AutoField's options (defaults as released).

    Parameters
    ----------
    update_frequency : int, default 10
        Training batches between two gate updates on a validation batch.
    tau_init, tau_decay, tau_min : float, default 1.0, 5e-5, 0.01
        Gumbel-softmax temperature: ``tau -= tau_decay`` at every forward while ``tau > tau_min``.
    init_logit : float, default 0.5
        Initial value of both gate logits.
    """

    update_frequency: int = 10
    tau_init: float = 1.0
    tau_decay: float = 5e-5
    tau_min: float = 0.01
    init_logit: float = 0.5

    def __post_init__(self) -> None:
        if self.update_frequency < 1:
            raise ConfigError(f"option 'method.update_frequency' must be >= 1; got {self.update_frequency}")
        if self.tau_init <= 0 or self.tau_min <= 0 or self.tau_decay < 0:
            raise ConfigError("options 'method.tau_init'/'tau_min' must be > 0 and 'tau_decay' >= 0; got "
                              f"{self.tau_init}/{self.tau_min}/{self.tau_decay}")


class AutoFieldGate(Gate):
    """Per-field 2-logit Gumbel-softmax gate with the released linear tau schedule."""

    def __init__(self, n_fields: int, config: AutoFieldConfig) -> None:
        super().__init__()
        self.config = config
        self.logits = nn.Parameter(torch.full((n_fields, 2), float(config.init_logit)))
        self.tau = float(config.tau_init)
        self.search = True
        self.forwards = 0

    def tick(self) -> None:
        """One forward's step of the temperature schedule."""
        self.forwards += 1
        if self.tau > self.config.tau_min:
            self.tau -= self.config.tau_decay

    def gates(self) -> torch.Tensor:
        """(F,) one Gumbel-softmax draw of the keep weights at the current tau."""
        return nn.functional.gumbel_softmax(self.logits, tau=self.tau, hard=False, dim=-1)[:, 1]

    def forward(self, emb: torch.Tensor, batch: Batch) -> torch.Tensor:
        if not self.search:
            return emb
        self.tick()
        return emb * self.gates().view(1, -1, 1)

    def fs_parameters(self) -> list[nn.Parameter]:
        return [self.logits]


@register_selector("autofield")
class AutoField(FieldSelector):
    """AutoField: scores = the trained "keep" logit of each field's gate.

    After ``fit``: ``model_`` (backbone + gate), ``search_`` (the search history), ``tau_``
    (temperature at the end of the search) and ``keep_prob_`` (softmax of the logits, no noise).
    """

    Config = AutoFieldConfig
    family = "gate"
    uses_backbone = True

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        require_valid(self.name, valid)
        assert valid is not None
        backbone = self.build_backbone(train.schema)
        gate = AutoFieldGate(len(self.fields_), self.config)
        model = GatedModel(backbone, gate)
        self.search_ = search_fit(model, train.tensors(), valid.tensors(), self.train_config, fs_mode="darts",
                                  update_frequency=self.config.update_frequency)
        self.model_ = model
        self.tau_ = gate.tau
        logits = gate.logits.detach().cpu()
        self.keep_prob_ = torch.softmax(logits, dim=-1)[:, 1].numpy().astype(np.float64)
        return logits[:, 1].numpy().astype(np.float64)
