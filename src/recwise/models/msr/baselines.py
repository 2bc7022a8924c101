"""Baselines reviewers asked for: logistic regression, one shared model without scenario input,
and one separate model per scenario.

* ``lr``: logistic regression on the same features (one weight per sparse value, one per dense
  column, a bias); the floor every model must beat.
* ``shared``: a plain MLP on the same features that never sees the scenario (fcn [128, 64, 32]).
* ``single``: one independent embedding + MLP per scenario (same sizes); rows are routed to their
  scenario's model, so each model only ever sees (and gets gradient from) its own scenario's rows,
  which is the single-scenario baseline trained in one loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel
from recwise.nn import MLP, FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Float, Space


@dataclass(frozen=True)
class LRConfig:
    init_std: float = 1e-4


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# (logistic regression has no width and no dropout)
LR_SEARCH_SPACE: Space = {}


@register("msr", "lr")
class LogisticRegression(MSRModel):
    Config = LRConfig
    search_space = LR_SEARCH_SPACE

    def __init__(self, schema: Schema, config: LRConfig) -> None:
        super().__init__(schema, config)
        self.weights = FeatureEmbedding.from_schema(schema, 1, init_std=config.init_std)
        self.dense = nn.Linear(len(schema.dense), 1) if schema.dense else None
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.weights(batch["sparse"]).sum(dim=(1, 2)) + self.bias  # (B,)
        if self.dense is not None:
            out = out + self.dense(batch["dense"]).squeeze(1)
        return out


@dataclass(frozen=True)
class MLPConfig:
    embed_dim: int = 16
    fcn_dims: tuple[int, ...] = (128, 64, 32)
    dropout: float = 0.0


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
MLP_SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "fcn_dims": Choice(("64,32,16", "128,64,32", "256,128,64")),
    "dropout": Float(0.0, 0.5),
}


@register("msr", "shared")
class SharedNoScenario(MSRModel):
    Config = MLPConfig
    search_space = MLP_SEARCH_SPACE

    def __init__(self, schema: Schema, config: MLPConfig) -> None:
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding.from_schema(schema, config.embed_dim)
        self.mlp = MLP(self.embedding.flat_dim, config.fcn_dims, dropout=config.dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.mlp(self.embedding.flat(batch)).squeeze(1)


@register("msr", "single")
class SingleScenario(MSRModel):
    Config = MLPConfig
    search_space = MLP_SEARCH_SPACE

    def __init__(self, schema: Schema, config: MLPConfig) -> None:
        super().__init__(schema, config)
        self.embeddings = nn.ModuleList(
            FeatureEmbedding.from_schema(schema, config.embed_dim) for _ in range(self.n_scenarios)
        )
        self.mlps = nn.ModuleList(
            MLP(cast(FeatureEmbedding, self.embeddings[0]).flat_dim, config.fcn_dims, dropout=config.dropout)
            for _ in range(self.n_scenarios)
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        scenario = batch["scenario"]
        out = torch.zeros(scenario.shape[0], dtype=torch.float32, device=scenario.device)
        for s, (emb, mlp) in enumerate(zip(cast("list[FeatureEmbedding]", self.embeddings), self.mlps)):
            rows = (scenario == s).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            part = {k: v.index_select(0, rows) for k, v in batch.items() if k in ("sparse", "dense")}
            if rows.numel() == 1 and self.training:  # BatchNorm cannot train on one row
                continue
            out = out.index_put((rows,), mlp(emb.flat(part)).squeeze(1))
        return out
