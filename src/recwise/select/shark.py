"""SHARK (sensitivity family): first-order Taylor cost of replacing a field by its mean embedding.

As released in ERASE (``models/fs/shark.py``): train the backbone, then on the validation split

    mean_f = average embedding row of field f over all validation rows
    importance_f = mean over rows of | sum_e  dLoss/demb_{f,e} * (mean_{f,e} - emb_{f,e}) |

with the model in eval mode (BatchNorm running statistics, no dropout) and the per-row loss
(BCE of that row). The released loop feeds one row at a time (``batch_size=1``) and reads the
gradient of the embedding table. In eval mode rows do not interact, so the gradient of the
*summed* loss of a batch with respect to the looked-up (B, F, E) embedding tensor is, row by
row, exactly the per-row gradient: the default here computes it for ``batch_size`` rows at once.
``batch_size=1`` keeps the released one-row-at-a-time loop (same numbers up to float rounding;
``benchmarks/shark_batched.py`` prints both and the speed ratio).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recwise.data.table import Batch, BatchLoader, Table
from recwise.errors import ConfigError
from recwise.select.base import FieldSelector, register_selector

__all__ = ["Shark", "SharkConfig", "shark_importance"]


@dataclass(frozen=True)
class SharkConfig:
    """SHARK's options.

    Parameters
    ----------
    batch_size : int, default 4096
        Validation rows per autograd call. 1 = the released one-row-at-a-time loop.
    max_rows : int, default 0
        Score on the first ``max_rows`` validation rows only (0: all, as released).
    """

    batch_size: int = 4096
    max_rows: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_rows < 0:
            raise ConfigError(f"option 'method.batch_size' must be >= 1 and 'max_rows' >= 0; got "
                              f"{self.batch_size}/{self.max_rows}")


@torch.no_grad()
def mean_embedding(model: nn.Module, data: Batch, batch_size: int) -> torch.Tensor:
    """(F, E) mean embedding row per field over ``data`` (eval mode)."""
    device = next(model.parameters()).device
    total: torch.Tensor | None = None
    n = 0
    for b in BatchLoader(data, batch_size, device=device):
        emb = model.embed(b)
        s = emb.sum(0)
        total = s if total is None else total + s
        n += emb.shape[0]
    assert total is not None
    return total / n


def shark_importance(model: nn.Module, data: Batch, batch_size: int, *, mean_batch_size: int = 16384) -> np.ndarray:
    """(F,) SHARK importances of a trained CTR backbone on ``data`` (``batch_size=1``: one row at a time)."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    mean = mean_embedding(model, data, mean_batch_size)
    importance = torch.zeros(mean.shape[0], dtype=torch.float64, device=device)
    n = 0
    for b in BatchLoader(data, batch_size, device=device):
        with torch.no_grad():
            emb = model.embed(b)
        emb.requires_grad_(True)
        logits = model.head(emb)
        # summed over rows: each row's gradient is the gradient of its own loss (eval mode)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, b["label"], reduction="sum")
        (grad,) = torch.autograd.grad(loss, emb)
        err = (grad * (mean.unsqueeze(0) - emb.detach())).sum(-1).abs()  # (B, F)
        importance += err.sum(0).double()
        n += emb.shape[0]
    model.train(was)
    return (importance / max(n, 1)).cpu().numpy()


@register_selector("shark")
class Shark(FieldSelector):
    """SHARK: scores = mean |first-order loss change| of replacing a field by its mean embedding.

    After ``fit``: ``model_`` (the trained backbone) and ``train_result_``.
    """

    Config = SharkConfig
    family = "sensitivity"
    uses_backbone = True

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        model = self.trained_backbone(train, valid)
        assert valid is not None
        return self.score_model(model, valid)

    def score_model(self, model: nn.Module, valid: Table) -> np.ndarray:
        """SHARK importances of an already trained backbone (used by the benchmark)."""
        data = valid if not self.config.max_rows else valid.take(np.arange(min(self.config.max_rows, len(valid))))
        return shark_importance(model, data.tensors(), self.config.batch_size,
                                mean_batch_size=self.train_config.eval_batch_size)
