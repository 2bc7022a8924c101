"""SFS (sensitivity family): single-shot saliency of a field mask of ones.

As released in ERASE (``models/fs/sfs.py``): the backbone is trained with a (frozen) mask of
ones on the field embeddings, i.e. as the plain backbone; then, in eval mode, for each of the
first ``num_batch_sampling`` (100) validation batches the gradient of the batch's mean BCE with
respect to the mask is taken, its absolute value averaged over those batches and normalised to
sum 1. The validation batches have the training batch size and come from a shuffled pass (the
released loader's; here seeded by the selector's seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recwise.data.table import Batch, BatchLoader, Table
from recwise.errors import ConfigError
from recwise.select.base import FieldSelector, register_selector

__all__ = ["SFS", "SFSConfig", "sfs_saliency"]


@dataclass(frozen=True)
class SFSConfig:
    """SFS's options (default as released).

    Parameters
    ----------
    num_batch_sampling : int, default 100
        Validation batches whose mask gradients are averaged.
    """

    num_batch_sampling: int = 100

    def __post_init__(self) -> None:
        if self.num_batch_sampling < 1:
            raise ConfigError(f"option 'method.num_batch_sampling' must be >= 1; got {self.num_batch_sampling}")


def sfs_saliency(model: nn.Module, data: Batch, batch_size: int, num_batches: int,
                 shuffle_seed: int | None = None) -> np.ndarray:
    """(F,) normalised mean |dLoss/dmask| over the first ``num_batches`` batches of ``data``
    (in row order, or of a permutation seeded by ``shuffle_seed``)."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    mask = torch.ones(model.num_fields, device=device, requires_grad=True)
    total = torch.zeros(model.num_fields, dtype=torch.float64, device=device)
    seen = 0
    loader = BatchLoader(data, batch_size, shuffle=shuffle_seed is not None, seed=shuffle_seed or 0, device=device)
    for i, b in enumerate(loader):
        if i == num_batches:
            break
        logits = model.head(model.embed(b) * mask.view(1, -1, 1))
        loss = nn.functional.binary_cross_entropy_with_logits(logits, b["label"])
        (grad,) = torch.autograd.grad(loss, mask)
        total += grad.abs().double()
        seen += 1
    model.train(was)
    mean = total / max(seen, 1)
    s = float(mean.sum())
    return (mean / s).cpu().numpy() if s > 0 else mean.cpu().numpy()


@register_selector("sfs")
class SFS(FieldSelector):
    """SFS: scores = normalised mean |dLoss/dmask| per field on validation batches.

    After ``fit``: ``model_`` (the trained backbone) and ``train_result_``.
    """

    Config = SFSConfig
    family = "sensitivity"
    uses_backbone = True

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        model = self.trained_backbone(train, valid)
        assert valid is not None
        return sfs_saliency(model, valid.tensors(), self.train_config.batch_size, self.config.num_batch_sampling,
                            shuffle_seed=self.seed)
