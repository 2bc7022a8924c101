"""Plain MLP over the flattened field embeddings (ERASE's ``mlp`` backbone, its default).

ERASE ``models/rec/mlp.py``: (Linear -> BatchNorm -> ReLU -> Dropout 0.2) x [16, 16], then a
Linear to one logit. The paper's four backbones use [32, 16] towers; this one keeps the code's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recwise.data.schema import Schema
from recwise.models.ctr._base import CTRModel
from recwise.nn import MLP
from recwise.registry import register


@dataclass(frozen=True)
class MLPConfig:
    embed_dim: int = 8
    init_std: float = 0.01
    mlp_dims: tuple[int, ...] = (16, 16)
    dropout: float = 0.2


@register("ctr", "mlp")
class MLPBackbone(CTRModel):
    Config = MLPConfig

    def __init__(self, schema: Schema, config: MLPConfig) -> None:
        super().__init__(schema, config)
        self.mlp = MLP(self.num_fields * self.embed_dim, config.mlp_dims, dropout=config.dropout)

    def head(self, emb: torch.Tensor) -> torch.Tensor:
        return self.mlp(emb.flatten(1)).squeeze(1)
