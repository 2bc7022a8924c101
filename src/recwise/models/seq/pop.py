"""Popularity: one learned logit per item, the same for every user (the floor any model must beat).

Trained with the same CE as the others, its logits converge to the log-frequency of each item
among the training targets. Examples: ``sequence`` (default) or ``prefix``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.data.table import Batch
from recwise.models.seq._base import SeqModel
from recwise.registry import register


@dataclass(frozen=True)
class PopConfig:
    pass


@register("sequential", "pop")
class Pop(SeqModel):
    Config = PopConfig
    examples = ("sequence", "prefix")

    def __init__(self, schema: Schema, config: PopConfig | None = None) -> None:
        super().__init__(schema, config or PopConfig())
        self.logit = nn.Parameter(torch.zeros(self.n_items, 1))

    def item_weights(self) -> torch.Tensor:
        return self.logit

    def encode(self, batch: Batch) -> torch.Tensor:
        return torch.ones(*batch["item_seq"].shape, 1, device=self.logit.device)
