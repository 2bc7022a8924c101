"""Shared Bottom for multi-scenario CTR (Caruana, 1997), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/sharebottom.py``). One shared bottom MLP, one tower per
scenario; each row takes its own scenario's tower. Defaults: the ML/Amazon/Douban script
(bottom [128], tower [8]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel, pick_scenario
from recwise.nn import MLP, FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Float, Space


@dataclass(frozen=True)
class SharedBottomConfig:
    embed_dim: int = 16
    bottom_dims: tuple[int, ...] = (128,)
    tower_dims: tuple[int, ...] = (8,)
    dropout: float = 0.0


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "bottom_dims": Choice(("64", "128", "256")),
    "tower_dims": Choice(("4", "8", "16")),
    "dropout": Float(0.0, 0.5),
}


@register("msr", "sharedbottom")
class SharedBottom(MSRModel):
    Config = SharedBottomConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: SharedBottomConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        self.bottom = MLP(self.embedding.flat_dim, c.bottom_dims, dropout=c.dropout, output_layer=False)
        self.towers = nn.ModuleList(
            MLP(c.bottom_dims[-1], c.tower_dims, dropout=c.dropout) for _ in range(self.n_scenarios)
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.bottom(self.embedding.flat(batch))  # (B, H)
        logits = torch.cat([tower(h) for tower in self.towers], dim=1)  # (B, S)
        return pick_scenario(logits, batch["scenario"])
