"""SAR-Net for multi-scenario CTR (Shen et al., CIKM 2021), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/sarnet.py``).

Mechanism: the flat embedding of the sparse fields is transferred into scenario ``s`` by a
scenario-wise scale and bias, ``e_s = e ⊙ w_s + b_s``. A mixture of "debias experts" (each a
BatchNorm1d followed by a Linear to ``expert_dim``) reads it: ``n_shared_experts`` experts shared by
all scenarios plus ``n_specific_experts`` experts owned by each scenario. A softmax gate (one
Linear over ``e_s``, shared by all scenarios) weighs the ``n_shared + n_specific`` experts a row can
see; the pooled vector goes through an MLP [32, 32] to the logit. As released, every scenario's
transfer and own experts run on every row (so their BatchNorms see the whole batch in training),
then each row keeps its own scenario's.

Defaults: the released scripts (the same on every dataset): 8 shared and 2 specific experts of
width 16, final MLP [32, 32]; w_s xavier-uniform, b_s U(0, 1). Dense columns are not used, as in
the released scripts (``features=sparse_feas``).

How we differ: we return the logit instead of ``sigmoid(logit)``. Nothing else; eval predictions
only use BatchNorm running statistics, so they do not depend on the batch.
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
from recwise.train.space import Choice, Space


@dataclass(frozen=True)
class SARNetConfig:
    """Hyperparameters of :class:`SARNet` (defaults: the released scripts).

    Parameters
    ----------
    embed_dim : int, default 16
    n_shared_experts : int, default 8
    n_specific_experts : int, default 2
        Experts owned by each scenario.
    expert_dim : int, default 16
        Output width of every debias expert.
    mlp_dims : tuple of int, default (32, 32)
        Hidden widths of the final MLP (a Linear to 1 follows).
    """

    embed_dim: int = 16
    n_shared_experts: int = 8
    n_specific_experts: int = 2
    expert_dim: int = 16
    mlp_dims: tuple[int, ...] = (32, 32)


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "expert_dim": Choice((8, 16, 32)),
    "mlp_dims": Choice(("16,16", "32,32", "64,64")),
}


class DebiasExpert(nn.Module):
    """BatchNorm1d then Linear: (B, input_dim) -> (B, output_dim)."""

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(input_dim)
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


@register("msr", "sarnet")
class SARNet(MSRModel):
    """Scenario-aware transfer of the embedding, then a gated mix of shared and own debias experts."""

    Config = SARNetConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: SARNetConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        d = self.embedding.flat_dim - self.embedding.n_dense  # sparse fields only
        self.scale = nn.Parameter(torch.empty(self.n_scenarios, d))
        self.shift = nn.Parameter(torch.empty(self.n_scenarios, d))
        for s in range(self.n_scenarios):  # one (1, d) xavier draw per scenario, as released
            nn.init.xavier_uniform_(self.scale.data[s : s + 1])
        nn.init.uniform_(self.shift, 0.0, 1.0)
        self.shared_experts = nn.ModuleList(DebiasExpert(d, c.expert_dim) for _ in range(c.n_shared_experts))
        self.own_experts = nn.ModuleList(
            nn.ModuleList(DebiasExpert(d, c.expert_dim) for _ in range(c.n_specific_experts))
            for _ in range(self.n_scenarios)
        )
        self.gate = nn.Linear(d, c.n_shared_experts + c.n_specific_experts)
        self.mlp = MLP(c.expert_dim, c.mlp_dims)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Batch dict -> (B,) logits."""
        e = self.embedding.flat(batch, dense=False)  # (B, F*E)
        rows = torch.arange(e.shape[0], device=e.device)
        scenario = batch["scenario"]
        # every scenario's transfer and own experts on every row (their BatchNorms see the batch)
        transferred, own = [], []
        for s, own_s in enumerate(self.own_experts):
            e_s = e * self.scale[s] + self.shift[s]  # (B, F*E)
            transferred.append(e_s)
            own.append(torch.stack([x(e_s) for x in cast(nn.ModuleList, own_s)], dim=1))  # (B, n_specific, H)
        e_own = torch.stack(transferred, dim=1)[rows, scenario]  # (B, F*E): each row's own transfer
        own_experts = torch.stack(own, dim=1)[rows, scenario]  # (B, n_specific, H)
        shared_experts = torch.stack([x(e_own) for x in self.shared_experts], dim=1)  # (B, n_shared, H)
        experts = torch.cat([shared_experts, own_experts], dim=1)  # (B, n_shared + n_specific, H)
        weights = torch.softmax(self.gate(e_own), dim=-1).unsqueeze(-1)  # (B, n_shared + n_specific, 1)
        return self.mlp((weights * experts).sum(dim=1)).squeeze(1)
