"""AdaFS (gate family, sample granularity): a controller gives every row its own field weights.

As released in ERASE (``models/fs/adafs.py``, ``optimizer_method='normal'``):

- BatchNorm over the embedding width (``BatchNorm1d(E)`` on the (B, E, F) transpose), then a
  controller MLP on the flattened normalised embeddings: Linear(F*E, 16), BN, ReLU, Dropout(0.2),
  Linear(16, F), BN, ReLU, Dropout(0.2) -> softmax over fields: one weight vector per row;
- the normalised embeddings times the row's weights go to the backbone;
- the controller and the BatchNorm are trained jointly with the backbone by the backbone's Adam
  (their names end in ``_bb`` in the released code); the DARTS branch, its second controller
  and ``update_frequency`` are dead code there, and ``pretrain_epoch`` is 0 (it only resets the
  early stopper during pretraining), so neither is an option here.

AdaFS writes no field ranking in the released code (no ``save_selection``). Our addition, for the
top-k protocol: a field's score is its mean weight over the validation rows (eval mode).
AdaFS's own protocol: :meth:`AdaFS.sample_weights` gives the (N, F) per-row weights and
:meth:`AdaFS.evaluate` the AUC/logloss of the searched model, which keeps every field and
reweights each row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recwise.data.table import Batch, BatchLoader, Table
from recwise.errors import ConfigError
from recwise.select._gated import Gate, GatedModel, evaluate_gated
from recwise.select.base import FieldSelector, fit_backbone, register_selector, require_valid

__all__ = ["AdaFS", "AdaFSConfig", "AdaFSGate"]


@dataclass(frozen=True)
class AdaFSConfig:
    """AdaFS's options (defaults as released).

    Parameters
    ----------
    hidden_size : int, default 16
        Width of the controller's hidden layer.
    dropout : float, default 0.2
        Dropout after each controller layer.
    """

    hidden_size: int = 16
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"options 'method.hidden_size' must be >= 1 and 'dropout' in [0, 1); got "
                              f"{self.hidden_size}/{self.dropout}")


class AdaFSGate(Gate):
    """BatchNorm + controller MLP -> per-row softmax weights over fields."""

    def __init__(self, n_fields: int, embed_dim: int, config: AdaFSConfig) -> None:
        super().__init__()
        h, d = config.hidden_size, config.dropout
        self.batchnorm = nn.BatchNorm1d(embed_dim)
        self.controller = nn.Sequential(
            nn.Linear(n_fields * embed_dim, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(d),
            nn.Linear(h, n_fields), nn.BatchNorm1d(n_fields), nn.ReLU(), nn.Dropout(d),
        )

    def normalise_and_weigh(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised embeddings (B, E, F), weights (B, F))."""
        b = emb.shape[0]
        x = self.batchnorm(emb.transpose(1, 2))
        weights = torch.softmax(self.controller(x.reshape(b, -1)), dim=-1)
        return x, weights

    def forward(self, emb: torch.Tensor, batch: Batch) -> torch.Tensor:
        x, weights = self.normalise_and_weigh(emb)
        return (x * weights.unsqueeze(1)).transpose(1, 2)


@register_selector("adafs")
class AdaFS(FieldSelector):
    """AdaFS: scores = mean per-row controller weight of each field on validation (our addition).

    After ``fit``: ``model_`` (backbone + controller), ``train_result_``.
    """

    Config = AdaFSConfig
    family = "gate"
    granularity = "sample"
    uses_backbone = True

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        require_valid(self.name, valid)
        assert valid is not None
        backbone = self.build_backbone(train.schema)
        gate = AdaFSGate(len(self.fields_), backbone.embed_dim, self.config)
        model = GatedModel(backbone, gate)
        self.train_result_ = fit_backbone(model, train, valid, self.train_config)
        self.model_ = model
        return self.sample_weights(valid).mean(axis=0).astype(np.float64)

    @torch.no_grad()
    def sample_weights(self, table: Table) -> np.ndarray:
        """(N, F) each row's field weights (eval mode; rows sum to 1), columns aligned with ``fields_``."""
        if not hasattr(self, "model_"):
            raise ConfigError("selector 'adafs' is not fitted; call fit(train, valid) first")
        model = self.model_
        device = next(model.parameters()).device
        was = model.training
        model.eval()
        out = []
        for b in BatchLoader(table.tensors(), self.train_config.eval_batch_size, device=device):
            _, w = model.gate.normalise_and_weigh(model.backbone.embed(b))
            out.append(w.cpu())
        model.train(was)
        return torch.cat(out).numpy()

    def evaluate(self, table: Table) -> dict[str, float]:
        """AUC and logloss of the searched model (all fields, per-row weights) on ``table``."""
        if not hasattr(self, "model_"):
            raise ConfigError("selector 'adafs' is not fitted; call fit(train, valid) first")
        return evaluate_gated(self.model_, table.tensors(), self.train_config.eval_batch_size)
