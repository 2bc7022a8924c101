"""MMoE for multi-scenario CTR (Ma et al., KDD 2018), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/mmoe.py``). ``n_expert`` shared experts, one gate per
scenario over the flat embedding (the gate is torch-rechub's MLP: Linear -> BatchNorm -> softmax),
one tower per scenario; each row takes its own scenario's tower. Defaults: the ML/Amazon/Douban
script (expert [16], tower [8]; n_expert = number of scenarios when 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel, pick_scenario
from recwise.nn import FeatureEmbedding, ParallelMLP
from recwise.registry import register
from recwise.train.space import Choice, Float, Space


@dataclass(frozen=True)
class MMoEConfig:
    embed_dim: int = 16
    n_expert: int = 0  # 0: one expert per scenario, as the scripts do
    expert_dims: tuple[int, ...] = (16,)
    tower_dims: tuple[int, ...] = (8,)
    dropout: float = 0.0


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "expert_dims": Choice(("8", "16", "32")),
    "tower_dims": Choice(("4", "8", "16")),
    "dropout": Float(0.0, 0.5),
}


@register("msr", "mmoe")
class MMoE(MSRModel):
    Config = MMoEConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: MMoEConfig) -> None:
        super().__init__(schema, config)
        c = config
        n_expert = c.n_expert or self.n_scenarios
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        d_in = self.embedding.flat_dim
        self.experts = ParallelMLP(n_expert, d_in, c.expert_dims, dropout=c.dropout, output_layer=False)
        self.gates = ParallelMLP(self.n_scenarios, d_in, (n_expert,), act="softmax", output_layer=False)
        self.towers = ParallelMLP(self.n_scenarios, c.expert_dims[-1], c.tower_dims, dropout=c.dropout,
                                  shared_input=False)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.embedding.flat(batch)  # (B, F*E + D)
        experts = self.experts(x)  # (B, n_expert, H)
        gates = self.gates(x)  # (B, S, n_expert): one softmax gate per scenario
        pooled = torch.bmm(gates, experts)  # (B, S, H): each scenario's mixture of experts
        logits = self.towers(pooled).squeeze(2)  # (B, S)
        return pick_scenario(logits, batch["scenario"])
