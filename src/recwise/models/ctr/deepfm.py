"""DeepFM as in ERASE (``models/rec/deepfm.py``).

Logit = second-order FM term over the field embeddings (0.5 * sum_e[(sum_f v)^2 - sum_f v^2])
plus an MLP [32, 16] (BatchNorm, ReLU, dropout 0.2) over the flattened embeddings. As released,
there is no first-order (linear) term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recwise.data.schema import Schema
from recwise.models.ctr._base import CTRModel
from recwise.nn import MLP
from recwise.registry import register


@dataclass(frozen=True)
class DeepFMConfig:
    embed_dim: int = 8
    init_std: float = 0.01
    mlp_dims: tuple[int, ...] = (32, 16)
    dropout: float = 0.2


def fm_interaction(emb: torch.Tensor) -> torch.Tensor:
    """(B, F, E) -> (B,): the FM pairwise term sum_{i<j} <v_i, v_j>."""
    square_of_sum = emb.sum(dim=1).pow(2)
    sum_of_square = emb.pow(2).sum(dim=1)
    return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)


@register("ctr", "deepfm")
class DeepFM(CTRModel):
    Config = DeepFMConfig

    def __init__(self, schema: Schema, config: DeepFMConfig) -> None:
        super().__init__(schema, config)
        self.mlp = MLP(self.num_fields * self.embed_dim, config.mlp_dims, dropout=config.dropout)

    def head(self, emb: torch.Tensor) -> torch.Tensor:
        return fm_interaction(emb) + self.mlp(emb.flatten(1)).squeeze(1)
