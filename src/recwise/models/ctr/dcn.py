"""Deep & Cross Network as in ERASE (``models/rec/dcn.py``, ``layers.CrossNetwork``).

Two cross layers x_{l+1} = x_0 * (w_l . x_l) + b_l + x_l over the flattened embeddings, in
parallel with an MLP [32, 16] (BatchNorm, ReLU, dropout 0.2, no output layer); the two outputs
are concatenated and a Linear gives the logit.
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
class DCNConfig:
    embed_dim: int = 8
    init_std: float = 0.01
    cross_layers: int = 2
    mlp_dims: tuple[int, ...] = (32, 16)
    dropout: float = 0.2


class CrossNetwork(nn.Module):
    """DCN's cross layers: one weight vector and one bias per layer."""

    def __init__(self, width: int, num_layers: int) -> None:
        super().__init__()
        self.w = nn.ModuleList(nn.Linear(width, 1, bias=False) for _ in range(num_layers))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(width)) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for w, b in zip(self.w, self.b):
            x = x0 * w(x) + b + x
        return x


@register("ctr", "dcn")
class DCN(CTRModel):
    Config = DCNConfig

    def __init__(self, schema: Schema, config: DCNConfig) -> None:
        super().__init__(schema, config)
        width = self.num_fields * self.embed_dim
        self.cross = CrossNetwork(width, config.cross_layers)
        self.mlp = MLP(width, config.mlp_dims, dropout=config.dropout, output_layer=False)
        self.linear = nn.Linear(width + self.mlp.output_dim, 1)

    def head(self, emb: torch.Tensor) -> torch.Tensor:
        x = emb.flatten(1)
        return self.linear(torch.cat([self.cross(x), self.mlp(x)], dim=1)).squeeze(1)
