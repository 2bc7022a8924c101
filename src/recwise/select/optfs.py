"""OptFS (gate family, value granularity): a learnable keep-mask per feature value.

As released in ERASE (``models/fs/optfs.py``, ``utils/fs_trainer.py``, ``fs_run.py``):

- one mask weight ``w_v`` per feature value (embedding row), initialised to 0.5; during the
  search the value's embedding row is scaled by ``sigmoid(T * w_v) / sigmoid(0.5)``;
- the temperature ``T`` starts at 1 and is multiplied by ``gamma^(1/(pretrain_epoch-1))`` at the
  first forward of every epoch (``gamma`` is 2000 for every dataset but Avazu, 5000; the config
  file's 5000 is overridden; ``pretrain_epoch`` 5);
- the loss adds ``reg_weight * sum_v sigmoid(T * w_v)`` over all values. The released trainer
  hard-codes ``reg_weight`` per dataset (4e-9 Avazu, 1e-8 Criteo and AliCCP, 1e-4 MovieLens-1M,
  none with a warning otherwise); here it is the option ``reg_weight``, default 1e-4 (the
  MovieLens value, since MovieLens-100K is recwise's default dataset);
- the mask weights have their own Adam (same lr), stepped after every batch with the backbone's;
- retrain (released): reload the search checkpoint (all weights) and train again with the hard
  mask ``w_v > 0`` (times ``1/sigmoid(0.5)``), no regulariser: :meth:`OptFS.retrain_with_mask`.

OptFS selects values, not fields, so the released code writes no field ranking. Our addition,
for the top-k protocol: a field's score is its *kept fraction*, the share of validation rows
whose value of that field has ``w_v > 0`` (ties broken by the field's mean mask weight over the
same rows, scaled into the gap below the next kept fraction). ``value_mask_`` holds the
value-level result for OptFS's own protocol.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.data.table import Batch, BatchLoader, Table
from recwise.errors import ConfigError
from recwise.select._gated import Gate, GatedModel, evaluate_gated, search_fit
from recwise.select.base import FieldSelector, register_selector, require_valid

__all__ = ["OptFS", "OptFSConfig", "OptFSGate"]


@dataclass(frozen=True)
class OptFSConfig:
    """OptFS's options (defaults as released for every dataset but Avazu).

    Parameters
    ----------
    gamma : float, default 2000
        Final temperature factor: ``T`` grows by ``gamma^(1/(pretrain_epoch-1))`` per epoch.
    pretrain_epoch : int, default 5
    reg_weight : float, default 1e-4
        Weight of ``sum sigmoid(T w)`` in the loss (released: per-dataset constants, see above).
    init_weight : float, default 0.5
    """

    gamma: float = 2000.0
    pretrain_epoch: int = 5
    reg_weight: float = 1e-4
    init_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.pretrain_epoch < 2:
            raise ConfigError(f"option 'method.pretrain_epoch' must be >= 2 (T grows by gamma^(1/(p-1))); "
                              f"got {self.pretrain_epoch}")
        if self.gamma <= 0 or self.reg_weight < 0:
            raise ConfigError(f"option 'method.gamma' must be > 0 and 'reg_weight' >= 0; got "
                              f"{self.gamma}/{self.reg_weight}")


def value_offsets(schema: Schema) -> tuple[np.ndarray, int]:
    """Row offset of each input field in the value table (sparse vocabularies, then one row per dense field)."""
    sizes = [f.vocab_size for f in schema.sparse] + [1] * len(schema.dense)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return offsets, int(sum(sizes))


def value_ids(batch: Batch, n_dense: int) -> torch.Tensor:
    """(B, F) local value ids: the sparse ids, then 0 for every dense field."""
    parts = []
    if "sparse" in batch:
        parts.append(batch["sparse"])
    if n_dense:
        ref = batch["dense"]
        parts.append(torch.zeros(ref.shape[0], n_dense, dtype=torch.int64, device=ref.device))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class OptFSGate(Gate):
    offsets: torch.Tensor  # buffer
    """Per-value mask ``sigmoid(T w) / sigmoid(0.5)`` (search) or ``(w > 0) / sigmoid(0.5)`` (ticket)."""

    def __init__(self, schema: Schema, config: OptFSConfig) -> None:
        super().__init__()
        self.config = config
        offsets, n_values = value_offsets(schema)
        self.register_buffer("offsets", torch.from_numpy(offsets), persistent=False)
        self.n_dense = len(schema.dense)
        self.mask_weight = nn.Parameter(torch.full((n_values,), float(config.init_weight)))
        self.temp = 1.0
        self.temp_increase = config.gamma ** (1.0 / (config.pretrain_epoch - 1))
        self.current_epoch: int | None = -1
        self.ticket = False
        self.scaling = 1.0 / (1.0 / (1.0 + np.exp(-0.5)))

    def rows(self, batch: Batch) -> torch.Tensor:
        return value_ids(batch, self.n_dense) + self.offsets

    def mask(self, batch: Batch) -> torch.Tensor:
        """(B, F) the mask of every row's values."""
        w = self.mask_weight[self.rows(batch)]
        m = (w > 0).float() if self.ticket else torch.sigmoid(self.temp * w)
        return self.scaling * m

    def forward(self, emb: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.epoch != self.current_epoch:
            self.temp *= self.temp_increase
            self.current_epoch = self.epoch
        return emb * self.mask(batch).unsqueeze(-1)

    def fs_parameters(self) -> list[nn.Parameter]:
        return [self.mask_weight]

    def extra_loss(self) -> torch.Tensor | None:
        if self.ticket or self.config.reg_weight == 0:
            return None
        return self.config.reg_weight * torch.sigmoid(self.temp * self.mask_weight).sum()


@register_selector("optfs")
class OptFS(FieldSelector):
    """OptFS: value-level masks; field scores = kept fraction on validation (our addition).

    After ``fit``: ``model_`` (search checkpoint), ``search_``, ``temp_``, ``value_mask_``
    (field -> bool array over its values, ``w > 0``), ``kept_ratio_`` (share of all value rows
    kept, the released "remain" figure), ``kept_fraction_`` and ``mean_weight_`` per field.
    """

    Config = OptFSConfig
    family = "gate"
    granularity = "value"
    uses_backbone = True

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        require_valid(self.name, valid)
        assert valid is not None
        backbone = self.build_backbone(train.schema)
        gate = OptFSGate(train.schema, self.config)
        model = GatedModel(backbone, gate)
        va = valid.tensors()
        self.search_ = search_fit(model, train.tensors(), va, self.train_config, fs_mode="joint")
        self.model_ = model
        self.temp_ = gate.temp
        w = gate.mask_weight.detach().cpu().numpy()
        offsets, _ = value_offsets(train.schema)
        sizes = [f.vocab_size for f in train.schema.sparse] + [1] * len(train.schema.dense)
        self.value_mask_ = {f: w[o:o + s] > 0 for f, o, s in zip(self.fields_, offsets, sizes)}
        self.kept_ratio_ = float((w > 0).mean())
        kept = np.zeros(len(self.fields_))
        mean_w = np.zeros(len(self.fields_))
        n = 0
        with torch.no_grad():
            for b in BatchLoader(va, self.train_config.eval_batch_size):
                rows = gate.rows({k: v.to(gate.offsets.device) for k, v in b.items()})
                wb = gate.mask_weight[rows].cpu()
                kept += (wb > 0).double().sum(0).numpy()
                mean_w += wb.double().sum(0).numpy()
                n += rows.shape[0]
        self.kept_fraction_ = kept / n
        self.mean_weight_ = mean_w / n
        if np.ptp(self.kept_fraction_) == 0:  # nothing separates the fields but the tie-break
            self.degenerate_ = (f"every field keeps the same share of its values ({self.kept_fraction_[0]:.3f} of "
                                f"validation rows), so the order is the tie-break by mean mask weight")
        # kept fraction first; the mean weight only orders fields whose kept fractions tie
        gap = 0.5 / n
        tiebreak = gap * (np.tanh(self.mean_weight_) + 1.0) / 2.0
        return self.kept_fraction_ + tiebreak

    def retrain_with_mask(self, train: Table, valid: Table, test: Table | None = None) -> dict[str, float]:
        """OptFS's own protocol (released retrain): from the search checkpoint, train again with the
        hard mask ``w > 0`` and no regulariser; returns validation (and test) AUC/logloss and the kept ratio."""
        if not hasattr(self, "model_"):
            raise ConfigError("selector 'optfs' is not fitted; call fit(train, valid) first")
        model = copy.deepcopy(self.model_)
        gate = model.gate
        assert isinstance(gate, OptFSGate)
        gate.ticket = True
        gate.mask_weight.requires_grad_(False)
        result = search_fit(model, train.tensors(), valid.tensors(), self.train_config, fs_mode="none")
        out = {"kept_ratio": self.kept_ratio_, "best_epoch": float(result.best_epoch)}
        bs = self.train_config.eval_batch_size
        for split, table in (("val", valid), ("test", test)):
            if table is not None:
                for metric, value in evaluate_gated(model, table.tensors(), bs).items():
                    out[f"{split}_{metric}"] = value
        return out
