"""GRU4Rec (Hidasi et al., ICLR 2016), as RecBole 1.2.1's ``GRU4Rec`` with CE loss.

Item embedding -> Dropout -> GRU (no biases) -> Linear(hidden -> embedding) -> last real position,
scored against the tied item table. Xavier init as RecBole. Examples: ``sequence`` (default) or
``prefix``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.data.table import Batch
from recwise.models.seq._base import Dropout, SeqModel
from recwise.registry import register


@dataclass(frozen=True)
class GRU4RecConfig:
    embedding_size: int = 64
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.3


@register("sequential", "gru4rec")
class GRU4Rec(SeqModel):
    """GRU4Rec. ``GRU4Rec(schema, GRU4Rec.Config(hidden_size=64))``."""

    Config = GRU4RecConfig
    examples = ("sequence", "prefix")

    def __init__(self, schema: Schema, config: GRU4RecConfig | None = None) -> None:
        config = config or GRU4RecConfig()
        super().__init__(schema, config)
        c = config
        self.item_embedding = nn.Embedding(self.n_items, c.embedding_size, padding_idx=0)
        self.dropout = Dropout(c.dropout)
        self.gru = nn.GRU(c.embedding_size, c.hidden_size, c.num_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(c.hidden_size, c.embedding_size)
        nn.init.xavier_normal_(self.item_embedding.weight)
        for w in self.gru.parameters():
            nn.init.xavier_uniform_(w)

    def encode(self, batch: Batch) -> torch.Tensor:
        h, _ = self.gru(self.dropout(self.item_embedding(batch["item_seq"])))
        return self.dense(h)
