"""Mamba4Rec (Liu et al., RelKD@KDD 2024), as ``chengkai-liu/Mamba4Rec`` ``mamba4rec.py``.

Item embedding -> Dropout -> LayerNorm -> N x [Mamba(d 64, d_state 32, d_conv 4, expand 2) ->
Dropout -> LayerNorm (residual only when N > 1) -> point-wise FFN (inner 4d)] -> last real
position, scored against the tied item table; no positional embedding (as the released code).
The Mamba block is :class:`recwise.nn.mamba.Mamba`: mamba_ssm's CUDA kernels on GPU when
installed, the fused numba kernel on CPU when numba is installed, a parallel pure-PyTorch scan
otherwise (``scan``: auto | numba | numba_v1 | parallel | sequential | cuda). Examples: ``sequence``
(default; Mamba is causal) or ``prefix`` (the released code's RecBole augmentation).

``forward`` (scores of the next item: prefix training and evaluation) computes what comes after the
scan -- out_proj, dropout, LayerNorm, FFN of the last layer -- at each row's last position only
(``positions="last"``, default); dropout masks are drawn for the whole (B, L, .) tensor as before
and read at those positions (:func:`dropout_at`), so the numbers are those of ``positions="all"``
(every position, then the gather) up to float rounding, at a fraction of the cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.data.table import Batch
from recwise.models.seq._base import Dropout, FeedForward, SeqModel, init_normal, last_index
from recwise.nn.mamba import Mamba
from recwise.registry import register

if TYPE_CHECKING:
    from recwise.models.seq.sigma import SIGMAConfig


@dataclass(frozen=True)
class Mamba4RecConfig:
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.2
    d_state: int = 32
    d_conv: int = 4
    expand: int = 2
    scan: Literal["auto", "numba", "numba_v1", "parallel", "sequential", "cuda"] = "auto"
    positions: Literal["last", "all"] = "last"  # forward: post-scan layers at the last position only


def dropout_at(x: torch.Tensor, shape: tuple[int, ...], rows: torch.Tensor, at: torch.Tensor, p: float,
               training: bool) -> torch.Tensor:
    """``dropout(full, p)[rows, at]`` for a (B, L, ...) tensor ``full`` of ``shape`` given only
    ``x = full[rows, at]``: the same random bits are drawn from the generator as
    :func:`recwise.models.seq._base.dropout` draws for the whole tensor (16 per element, three per
    int64), and the mask is read at the selected positions. On CUDA: ``F.dropout(x)``."""
    if not training or p == 0.0:
        return x
    if x.is_cuda:
        return nn.functional.dropout(x, p, True)
    n = math.prod(shape)
    bits = torch.empty((n + 2) // 3, dtype=torch.int64).random_().view(torch.int16)
    inner = math.prod(shape[2:])
    flat = ((rows * shape[1] + at) * inner)[:, None] + torch.arange(inner)  # element numbers (B, inner)
    u16 = bits[(flat // 3) * 4 + flat % 3].view(x.shape)
    mask = (u16 >= (round(p * 65536) - 32768)).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * mask


def ffn_at(ffn: FeedForward, x: torch.Tensor, L: int, rows: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """``ffn(full)[rows, at]`` from ``x = full[rows, at]`` (B, d), the dropout masks as for the full
    (B, L, .) input (:func:`dropout_at`)."""
    B = x.shape[0]
    h = nn.functional.gelu(ffn.w1(x))
    h = dropout_at(h, (B, L, h.shape[-1]), rows, at, ffn.dropout.p, ffn.training)
    h = dropout_at(ffn.w2(h), (B, L, x.shape[-1]), rows, at, ffn.dropout.p, ffn.training)
    return ffn.norm(x + h)


class MambaLayer(nn.Module):
    def __init__(self, c: Mamba4RecConfig) -> None:
        super().__init__()
        self.residual = c.num_layers > 1
        self.mamba = Mamba(c.hidden_size, c.d_state, c.d_conv, c.expand, scan=c.scan)
        self.dropout = Dropout(c.dropout)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.ffn = FeedForward(c.hidden_size, 4 * c.hidden_size, c.dropout)

    def forward(self, x: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, d) -> (B, L, d); with ``at`` (B,) positions: the output there only, (B, d)."""
        if at is None:
            h = self.dropout(self.mamba(x))
            h = self.norm(h + x) if self.residual else self.norm(h)
            return self.ffn(h)
        rows = torch.arange(x.shape[0])
        h = dropout_at(self.mamba(x, at=at), x.shape, rows, at, self.dropout.p, self.training)
        h = self.norm(h + x[rows, at]) if self.residual else self.norm(h)
        return ffn_at(self.ffn, h, x.shape[1], rows, at)


class MambaStack(SeqModel):
    """Embedding -> dropout -> LayerNorm -> ``num_layers`` layers of ``layer_cls``, the released
    N(0, 0.02) init; shared by Mamba4Rec and SIGMA. On CPU with ``positions="last"`` the last layer
    computes what follows its scan at each row's last position only (same numbers and dropout
    masks as ``positions="all"``; tested)."""

    layer_cls: type[nn.Module]

    def __init__(self, schema: Schema, config: Mamba4RecConfig | SIGMAConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.item_embedding = nn.Embedding(self.n_items, c.hidden_size, padding_idx=0)
        self.dropout = Dropout(c.dropout)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.layers = nn.ModuleList(self.layer_cls(c) for _ in range(c.num_layers))
        # the released _init_weights: N(0, 0.02) on every Linear/Embedding weight, zero Linear biases;
        # it reaches inside the Mamba block, so dt_proj's bias is zeroed too (step size softplus(0))
        self.apply(init_normal)

    def encode(self, batch: Batch) -> torch.Tensor:
        x = self.norm(self.dropout(self.item_embedding(batch["item_seq"])))
        for layer in self.layers:
            x = layer(x)
        return x

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.config.positions == "all" or batch["item_seq"].is_cuda:
            return super().forward(batch)
        at = last_index(batch["item_seq"], batch["item_len"])
        x = self.norm(self.dropout(self.item_embedding(batch["item_seq"])))
        for layer in self.layers[:-1]:
            x = layer(x)
        return self.score(self.layers[-1](x, at=at))


@register("sequential", "mamba4rec")
class Mamba4Rec(MambaStack):
    """Mamba4Rec. ``Mamba4Rec(schema, Mamba4Rec.Config(num_layers=1))``."""

    Config = Mamba4RecConfig
    examples = ("sequence", "prefix")
    layer_cls = MambaLayer

    def __init__(self, schema: Schema, config: Mamba4RecConfig | None = None) -> None:
        super().__init__(schema, config or Mamba4RecConfig())


