"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Follows RecBole 1.2.1's ``SASRec`` (``recbole/model/sequential_recommender/sasrec.py``):
item + learned position embeddings -> LayerNorm -> Dropout -> N x [multi-head causal attention
with residual + LayerNorm, point-wise FFN], LayerNorm eps 1e-12, N(0, 0.02) init, output at the
last real position scored against the tied item table, CE over all items.

Differences that do not change the function: attention uses ``scaled_dot_product_attention``
(causal, plus a key-padding mask only when a batch is left-padded) and, in :meth:`forward`, the
last layer is computed only at the gathered position (its keys and values still span the whole
window), which gives the same output as computing every position and gathering.

Examples: ``sequence`` (default) or ``prefix``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from recwise.data.schema import Schema
from recwise.data.table import Batch
from recwise.errors import ConfigError
from recwise.models.seq._base import Dropout, FeedForward, SeqModel, dropout, init_normal, last_index
from recwise.registry import register


@dataclass(frozen=True)
class SASRecConfig:
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    hidden_dropout: float = 0.5
    attn_dropout: float = 0.5
    max_len: int = 50

    def __post_init__(self) -> None:
        if self.hidden_size % self.n_heads:
            raise ConfigError(f"option 'model.hidden_size' ({self.hidden_size}) must be divisible by "
                              f"'model.n_heads' ({self.n_heads})")


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
               dropout_p: float = 0.0, is_causal: bool = False) -> torch.Tensor:
    """Softmax attention with :func:`dropout` on the weights (CPU training; SDPA's semantics)."""
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if is_causal:
        L, S = scores.shape[-2:]
        attn_mask = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, -float("inf"))
    return dropout(scores.softmax(-1), dropout_p, True) @ v


class Block(nn.Module):
    def __init__(self, c: SASRecConfig) -> None:
        super().__init__()
        self.n_heads, self.attn_dropout = c.n_heads, c.attn_dropout
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.out = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = Dropout(c.hidden_dropout)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.ffn = FeedForward(c.hidden_size, c.inner_size, c.hidden_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, query: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, d). ``query``: (B,) positions to compute (the rest skipped), else all."""
        B, L, d = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=-1)
        k = k.view(B, L, H, d // H).transpose(1, 2)
        v = v.view(B, L, H, d // H).transpose(1, 2)
        drop = self.attn_dropout if self.training else 0.0
        attend = _attention if drop > 0 and not x.is_cuda else F.scaled_dot_product_attention
        if query is None:
            q = q.view(B, L, H, d // H).transpose(1, 2)
            ctx = attend(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=mask is None)
            resid = x
        else:  # one query row per example, at position query[b]; keys beyond it are masked
            rows = torch.arange(B, device=x.device)
            q = q[rows, query].view(B, 1, H, d // H).transpose(1, 2)
            allowed = torch.arange(L, device=x.device)[None, :] <= query[:, None]
            if mask is not None:
                allowed = allowed & mask[rows, 0, query]
            ctx = attend(q, k, v, attn_mask=allowed[:, None, None, :], dropout_p=drop)
            resid = x[rows, query][:, None]
        ctx = ctx.transpose(1, 2).reshape(B, -1, d)
        h = self.norm(resid + self.dropout(self.out(ctx)))
        return self.ffn(h)


@register("sequential", "sasrec")
class SASRec(SeqModel):
    """SASRec. ``SASRec(schema, SASRec.Config(n_layers=2))``."""

    Config = SASRecConfig
    examples = ("sequence", "prefix")

    def __init__(self, schema: Schema, config: SASRecConfig | None = None) -> None:
        config = config or SASRecConfig()
        super().__init__(schema, config)
        c = config
        self.item_embedding = nn.Embedding(self.n_items, c.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(c.max_len, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.dropout = Dropout(c.hidden_dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.apply(init_normal)

    def _embed(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        seq = batch["item_seq"]
        L = seq.shape[1]
        if L > self.config.max_len:
            raise ConfigError(f"input length {L} exceeds the model's max_len {self.config.max_len}")
        x = self.item_embedding(seq) + self.position_embedding.weight[:L]
        x = self.dropout(self.norm(x))
        mask = None
        if bool((seq[:, 0] == 0).any()):  # left padding: padded keys must be masked out
            causal = torch.ones(L, L, dtype=torch.bool, device=seq.device).tril()
            keys = (seq != 0)[:, None, None, :] | torch.eye(L, dtype=torch.bool, device=seq.device)
            mask = causal & keys  # (B, 1, L, L)
        return x, mask

    def encode(self, batch: Batch) -> torch.Tensor:
        x, mask = self._embed(batch)
        for block in self.blocks:
            x = block(x, mask)
        return x

    def forward(self, batch: Batch) -> torch.Tensor:
        x, mask = self._embed(batch)
        idx = last_index(batch["item_seq"], batch["item_len"])
        for block in self.blocks[:-1]:
            x = block(x, mask)
        h = self.blocks[-1](x, mask, query=idx)[:, 0]
        return self.score(h)
