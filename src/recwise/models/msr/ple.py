"""PLE for multi-scenario CTR (Tang et al., RecSys 2020), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/ple.py``, itself torch-rechub's multi-task PLE with
tasks read as scenarios).

Mechanism: ``n_level`` stacked CGC (Customized Gate Control) layers. In each layer every scenario
owns ``n_expert_specific`` experts and all scenarios share ``n_expert_shared`` experts; scenario
``s`` mixes its own experts and the shared ones with a softmax gate computed from its own input.
Every layer but the last also has a shared gate over *all* experts, whose output is the next
layer's shared input. One tower per scenario reads its scenario's last CGC output; each row takes
the tower of its own scenario. Experts, gates and towers are torch-rechub MLPs
(Linear -> BatchNorm1d -> act), the gates end in a softmax.

Defaults: the ML/Amazon/Douban script (one level, 2 specific + 1 shared expert, expert [16],
tower [8]); the input is the flat embedding of the sparse fields followed by the dense columns.

How we differ: we return the logit of each row's own tower instead of the sigmoid picked with
``torch.where``. The tower reads ``expert_dims[-1]`` features and ends in a Linear to 1, which is
the shape torch-rechub issue #52 asked for and the released code already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel, pick_scenario
from recwise.nn import MLP, FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Float, Space


@dataclass(frozen=True)
class PLEConfig:
    """Hyperparameters of :class:`PLE` (defaults: the released ML script).

    Parameters
    ----------
    embed_dim : int, default 16
    n_level : int, default 1
        Number of stacked CGC layers.
    n_expert_specific : int, default 2
        Experts owned by each scenario, per layer.
    n_expert_shared : int, default 1
        Experts shared by all scenarios, per layer.
    expert_dims : tuple of int, default (16,)
    tower_dims : tuple of int, default (8,)
    dropout : float, default 0.0
        Dropout inside experts and towers.
    """

    embed_dim: int = 16
    n_level: int = 1
    n_expert_specific: int = 2
    n_expert_shared: int = 1
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


def _gate(input_dim: int, n_out: int) -> MLP:
    """Linear -> BatchNorm1d -> softmax over ``n_out`` experts."""
    return MLP(input_dim, (n_out,), act="softmax", output_layer=False)


class CGC(nn.Module):
    """One Customized Gate Control layer over ``n_scenarios`` + 1 inputs (the last one is shared).

    ``forward(inputs)`` takes ``n_scenarios + 1`` tensors (B, input_dim) and returns
    ``n_scenarios`` tensors (B, H), plus the shared one when ``last`` is False.
    """

    def __init__(self, input_dim: int, n_scenarios: int, c: PLEConfig, *, last: bool) -> None:
        super().__init__()

        def expert() -> MLP:
            return MLP(input_dim, c.expert_dims, dropout=c.dropout, output_layer=False)

        self.n_specific = c.n_expert_specific
        self.specific = nn.ModuleList(
            nn.ModuleList(expert() for _ in range(c.n_expert_specific)) for _ in range(n_scenarios)
        )
        self.shared = nn.ModuleList(expert() for _ in range(c.n_expert_shared))
        n_own = c.n_expert_specific + c.n_expert_shared
        self.gates = nn.ModuleList(_gate(input_dim, n_own) for _ in range(n_scenarios))
        n_all = n_scenarios * c.n_expert_specific + c.n_expert_shared
        self.shared_gate = None if last else _gate(input_dim, n_all)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        shared_in = inputs[-1]
        shared = [e(shared_in) for e in self.shared]  # each (B, H)
        specific = [[e(x) for e in cast(nn.ModuleList, experts)] for experts, x in zip(self.specific, inputs)]
        outs = []
        for gate, x, own in zip(self.gates, inputs, specific):
            experts = torch.stack(own + shared, dim=1)  # (B, n_specific + n_shared, H)
            outs.append((gate(x).unsqueeze(-1) * experts).sum(dim=1))  # (B, H)
        if self.shared_gate is not None:
            every = torch.stack([e for own in specific for e in own] + shared, dim=1)  # (B, n_all, H)
            outs.append((self.shared_gate(shared_in).unsqueeze(-1) * every).sum(dim=1))
        return outs


@register("msr", "ple")
class PLE(MSRModel):
    """Progressive Layered Extraction with one gate and one tower per scenario."""

    Config = PLEConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: PLEConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        widths = [self.embedding.flat_dim] + [c.expert_dims[-1]] * (c.n_level - 1)
        self.levels = nn.ModuleList(
            CGC(w, self.n_scenarios, c, last=i == c.n_level - 1) for i, w in enumerate(widths)
        )
        self.towers = nn.ModuleList(
            MLP(c.expert_dims[-1], c.tower_dims, dropout=c.dropout) for _ in range(self.n_scenarios)
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Batch dict -> (B,) logits of each row's own scenario tower."""
        x = self.embedding.flat(batch)  # (B, F*E + D)
        inputs = [x] * (self.n_scenarios + 1)
        for level in self.levels:
            inputs = level(inputs)  # S (+1 shared) tensors of (B, H)
        logits = torch.cat([tower(h) for tower, h in zip(self.towers, inputs)], dim=1)  # (B, S)
        return pick_scenario(logits, batch["scenario"])
