"""Wide & Deep as in ERASE (``models/rec/widedeep.py``).

The deep part is an MLP [32, 16] (BatchNorm, ReLU, dropout 0.2) to one logit; the wide part is
one Linear layer over the same flattened field embeddings (not a separate 1-dim embedding), and
the two logits are added.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.models.ctr._base import CTRModel
from recwise.nn import MLP
from recwise.registry import register


@dataclass(frozen=True)
class WideDeepConfig:
    embed_dim: int = 8
    init_std: float = 0.01
    mlp_dims: tuple[int, ...] = (32, 16)
    dropout: float = 0.2


@register("ctr", "widedeep")
class WideDeep(CTRModel):
    Config = WideDeepConfig

    def __init__(self, schema: Schema, config: WideDeepConfig) -> None:
        super().__init__(schema, config)
        width = self.num_fields * self.embed_dim
        self.mlp = MLP(width, config.mlp_dims, dropout=config.dropout)
        self.linear = nn.Linear(width, 1)

    def head(self, emb: torch.Tensor) -> torch.Tensor:
        x = emb.flatten(1)
        return (self.mlp(x) + self.linear(x)).squeeze(1)
