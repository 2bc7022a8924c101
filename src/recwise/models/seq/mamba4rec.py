"""Mamba4Rec (Liu et al., RelKD@KDD 2024), as ``chengkai-liu/Mamba4Rec`` ``mamba4rec.py``.

Item embedding -> Dropout -> LayerNorm -> N x [Mamba(d 64, d_state 32, d_conv 4, expand 2) ->
Dropout -> LayerNorm (residual only when N > 1) -> point-wise FFN (inner 4d)] -> last real
position, scored against the tied item table; no positional embedding (as the released code).
The Mamba block is :class:`recwise.nn.mamba.Mamba`: mamba_ssm's CUDA kernels on GPU when
installed, the fused numba kernel on CPU when numba is installed, a parallel pure-PyTorch scan
otherwise (``scan``: auto | numba | parallel | sequential | cuda). Examples: ``sequence`` (default; Mamba is
causal) or ``prefix`` (the released code's RecBole augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.data.table import Batch
from recwise.models.seq._base import Dropout, FeedForward, SeqModel, init_normal
from recwise.nn.mamba import Mamba
from recwise.registry import register


@dataclass(frozen=True)
class Mamba4RecConfig:
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.2
    d_state: int = 32
    d_conv: int = 4
    expand: int = 2
    scan: Literal["auto", "numba", "parallel", "sequential", "cuda"] = "auto"


class MambaLayer(nn.Module):
    def __init__(self, c: Mamba4RecConfig) -> None:
        super().__init__()
        self.residual = c.num_layers > 1
        self.mamba = Mamba(c.hidden_size, c.d_state, c.d_conv, c.expand, scan=c.scan)
        self.dropout = Dropout(c.dropout)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.ffn = FeedForward(c.hidden_size, 4 * c.hidden_size, c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.mamba(x))
        h = self.norm(h + x) if self.residual else self.norm(h)
        return self.ffn(h)


@register("sequential", "mamba4rec")
class Mamba4Rec(SeqModel):
    """Mamba4Rec. ``Mamba4Rec(schema, Mamba4Rec.Config(num_layers=1))``."""

    Config = Mamba4RecConfig
    examples = ("sequence", "prefix")

    def __init__(self, schema: Schema, config: Mamba4RecConfig | None = None) -> None:
        config = config or Mamba4RecConfig()
        super().__init__(schema, config)
        c = config
        self.item_embedding = nn.Embedding(self.n_items, c.hidden_size, padding_idx=0)
        self.dropout = Dropout(c.dropout)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.layers = nn.ModuleList(MambaLayer(c) for _ in range(c.num_layers))
        # the released _init_weights: N(0, 0.02) on every Linear/Embedding weight, zero Linear biases;
        # it reaches inside the Mamba block, so dt_proj's bias is zeroed too (step size softplus(0))
        self.apply(init_normal)

    def encode(self, batch: Batch) -> torch.Tensor:
        x = self.norm(self.dropout(self.item_embedding(batch["item_seq"])))
        for layer in self.layers:
            x = layer(x)
        return x


