"""BERT4Rec (Sun et al., CIKM 2019), as RecBole 1.2.1's ``BERT4Rec`` with CE over all items.

Item + position embeddings (one extra ``[MASK]`` item row) -> LayerNorm -> Dropout ->
N x bidirectional Transformer blocks (padding keys masked) -> Linear + GELU + LayerNorm ->
dot product with the item table plus a per-item output bias.

Training (``cloze`` examples): windows of up to ``max_len`` training items; each real item is
replaced by ``[MASK]`` with probability ``mask_ratio`` and predicted at its position. Prediction:
``[MASK]`` is appended after the last item (the oldest item is dropped when the window is full),
as RecBole's ``reconstruct_test_data``. RecBole's ``ft_ratio`` (extra last-item-only masking) is
not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from recwise.data.schema import Schema
from recwise.data.table import Batch
from recwise.models.seq._base import Dropout, SeqModel, init_normal, last_index
from recwise.models.seq.sasrec import Block, SASRecConfig
from recwise.registry import register


@dataclass(frozen=True)
class BERT4RecConfig:
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    hidden_dropout: float = 0.2
    attn_dropout: float = 0.2
    mask_ratio: float = 0.2
    max_len: int = 50


@register("sequential", "bert4rec")
class BERT4Rec(SeqModel):
    """BERT4Rec. ``BERT4Rec(schema, BERT4Rec.Config(mask_ratio=0.2))``."""

    Config = BERT4RecConfig
    examples = ("cloze",)

    def __init__(self, schema: Schema, config: BERT4RecConfig | None = None) -> None:
        config = config or BERT4RecConfig()
        super().__init__(schema, config)
        c = config
        self.mask_token = self.n_items
        self.item_embedding = nn.Embedding(self.n_items + 1, c.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(c.max_len, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.dropout = Dropout(c.hidden_dropout)
        block_cfg = SASRecConfig(c.hidden_size, c.n_layers, c.n_heads, c.inner_size, c.hidden_dropout,
                                 c.attn_dropout, c.max_len)
        self.blocks = nn.ModuleList(Block(block_cfg) for _ in range(c.n_layers))
        self.out_dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.out_norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.out_bias = nn.Parameter(torch.zeros(self.n_items))
        self.apply(init_normal)

    def item_weights(self) -> torch.Tensor:
        return self.item_embedding.weight[: self.n_items]

    def score(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item_weights().t() + self.out_bias

    def _encode_ids(self, seq: torch.Tensor) -> torch.Tensor:
        L = seq.shape[1]
        x = self.dropout(self.norm(self.item_embedding(seq) + self.position_embedding.weight[:L]))
        eye = torch.eye(L, dtype=torch.bool, device=seq.device)
        mask = ((seq != 0)[:, None, None, :] | eye)  # bidirectional; padded keys masked
        for block in self.blocks:
            x = block(x, mask)
        return self.out_norm(F.gelu(self.out_dense(x)))

    def encode(self, batch: Batch) -> torch.Tensor:
        return self._encode_ids(batch["item_seq"])

    def forward(self, batch: Batch) -> torch.Tensor:
        seq, n = batch["item_seq"], batch["item_len"]
        B, L = seq.shape
        rows = torch.arange(B, device=seq.device)
        idx = last_index(seq, n)
        ext = torch.cat([seq, torch.zeros_like(seq[:, :1])], dim=1)
        ext[rows, idx + 1] = self.mask_token
        full = idx == L - 1  # no room after the last item: drop the oldest
        inp = torch.where(full[:, None], ext[:, 1:], ext[:, :L])
        pos = torch.where(full, idx, idx + 1)
        return self.score(self._encode_ids(inp)[rows, pos])

    def cloze_loss(self, batch: Batch) -> torch.Tensor:
        seq = batch["item_seq"]
        real = seq != 0
        masked = real & (torch.rand(seq.shape, device=seq.device) < self.config.mask_ratio)
        if not bool(masked.any()):  # at least one prediction per batch
            first = real.float().argmax()
            masked.view(-1)[first] = True
        inp = torch.where(masked, torch.full_like(seq, self.mask_token), seq)
        h = self._encode_ids(inp)
        return F.cross_entropy(self.score(h[masked]), seq[masked])
