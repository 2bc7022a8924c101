"""M3oE for multi-scenario CTR (Zhang et al., SIGIR 2024), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/m3oe.py``).

The flat input x (sparse embeddings + dense columns) goes through:

1. a STAR-style layer: ``x @ (W_s * W_shared) + b_s + b_shared`` with the row's scenario s
   (Xavier-initialised weights, zero biases), then Linear -> LayerNorm -> ReLU, plus a skip
   connection Linear -> LayerNorm -> ReLU from x: ``h`` (B, star_dims[-1]);
2. ``n_shared_experts`` shared experts and one expert per scenario, each Linear -> LayerNorm ->
   ReLU per width of ``expert_dims``;
3. per scenario s: a softmax gate over the shared experts reading ``stop_gradient(h)``, plus the
   domain-balance fusion of the scenario experts,
   ``bal * e_s + (1 - bal) / (S - 1) * sum_{j != s} e_j``, weighted by ``exp``; ``bal`` and ``exp``
   are sigmoids of learnable scalars (the released ``softmax_type=3``) starting at ``bal_d`` and
   ``exp_d``;
4. a tower per scenario (Linear -> LayerNorm -> ReLU -> Linear -> 1); each row takes its own.

Defaults: the ML script (``fcn_dims=[128, 64, 64, 32]``, 4 experts, exp_d = bal_d = 1). The
released ``fcn_dims`` mixes both parts: its first two widths are the STAR layer and its MLP, its
third must equal the second (the experts' input) and the rest are expert widths; here they are
``star_dims=(128, 64)`` and ``expert_dims=(32,)`` (Ali-CCP's [512, 256, 256, 64] is (512, 256) and
(64,)).

How we differ from the released code
------------------------------------
* Single task: the released multi-task branch (task experts, ``exp_t``/``bal_t`` weights) is
  commented out there, and its two unused task weights are not created here.
* Nothing in M3oE depends on batch composition (LayerNorm only, no batch statistics), so eval
  needs no fix. The released ``Weights`` module decrements a temperature ``tau`` on every call,
  but the sigmoid form used by every script never reads it, so we drop it.
* The model returns logits; the released one returns sigmoid probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel, pick_scenario
from recwise.nn import FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Space


@dataclass(frozen=True)
class M3oEConfig:
    embed_dim: int = 16
    star_dims: tuple[int, int] = (128, 64)  # STAR layer width, then its MLP (and skip) width
    expert_dims: tuple[int, ...] = (32,)
    n_shared_experts: int = 4
    exp_d: float = 1.0  # initial logit of the weight of the fused scenario experts
    bal_d: float = 1.0  # initial logit of the own-scenario share in the scenario-expert fusion

    def __post_init__(self) -> None:
        if len(self.star_dims) != 2 or not self.expert_dims or self.n_shared_experts < 1:
            raise ValueError("star_dims needs 2 widths, expert_dims at least 1 and n_shared_experts >= 1; "
                             f"got {self.star_dims}, {self.expert_dims}, {self.n_shared_experts}")


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "star_dims": Choice(("64,32", "128,64", "256,128")),
    "expert_dims": Choice(("16", "32", "64")),
}


def layer_norm_mlp(dims: tuple[int, ...]) -> nn.Sequential:
    """(Linear -> LayerNorm -> ReLU) for each consecutive pair of ``dims``: (B, dims[0]) -> (B, dims[-1])."""
    layers: list[nn.Module] = []
    for w_in, w_out in zip(dims, dims[1:]):
        layers += [nn.Linear(w_in, w_out), nn.LayerNorm(w_out), nn.ReLU()]
    return nn.Sequential(*layers)


@register("msr", "m3oe")
class M3oE(MSRModel):
    """STAR layer, shared and per-scenario experts, gated and balanced per scenario.

    Parameters
    ----------
    schema : Schema
    config : M3oEConfig
        ``embed_dim`` (16), ``star_dims`` ((128, 64)), ``expert_dims`` ((32,)),
        ``n_shared_experts`` (4), ``exp_d`` (1.0), ``bal_d`` (1.0).
    """

    Config = M3oEConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: M3oEConfig) -> None:
        super().__init__(schema, config)
        c = config
        S = self.n_scenarios
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        d_in = self.embedding.flat_dim
        star, hidden = c.star_dims
        self.shared_weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(d_in, star)))
        self.shared_bias = nn.Parameter(torch.zeros(star))
        self.scenario_weight = nn.Parameter(torch.stack([nn.init.xavier_uniform_(torch.empty(d_in, star))
                                                         for _ in range(S)]))  # (S, d_in, star)
        self.scenario_bias = nn.Parameter(torch.zeros(S, star))
        self.star_mlp = layer_norm_mlp((star, hidden))
        self.skip = layer_norm_mlp((d_in, hidden))

        expert_dims = (hidden, *c.expert_dims)
        self.shared_experts = nn.ModuleList(layer_norm_mlp(expert_dims) for _ in range(c.n_shared_experts))
        self.scenario_experts = nn.ModuleList(layer_norm_mlp(expert_dims) for _ in range(S))
        self.gates = nn.ModuleList(nn.Linear(hidden, c.n_shared_experts) for _ in range(S))
        self.exp_logit = nn.Parameter(torch.tensor([c.exp_d]))
        self.bal_logit = nn.Parameter(torch.tensor([c.bal_d]))
        width = c.expert_dims[-1]
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, 1))
            for _ in range(S)
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.embedding.flat(batch)  # (B, F*E + D)
        scenario = batch["scenario"]
        S = self.n_scenarios

        # STAR layer: every scenario's weights on every row, then each row keeps its own.
        weights = self.scenario_weight * self.shared_weight  # (S, d_in, star)
        star_all = torch.einsum("bi,sio->bso", x, weights) + self.scenario_bias  # (B, S, star)
        star = star_all[torch.arange(len(x)), scenario] + self.shared_bias  # (B, star)
        h = self.star_mlp(star) + self.skip(x)  # (B, hidden)

        shared = torch.stack([e(h) for e in self.shared_experts], dim=1)  # (B, n_shared, W)
        own = torch.stack([e(h) for e in self.scenario_experts], dim=1)  # (B, S, W)
        bal, exp = torch.sigmoid(self.bal_logit), torch.sigmoid(self.exp_logit)
        others = own.sum(dim=1, keepdim=True) - own  # (B, S, W): sum over the other scenarios
        balanced = bal * own + (1 - bal) / max(S - 1, 1) * others  # (B, S, W)

        logits = []
        for s, (gate, tower) in enumerate(zip(self.gates, self.towers)):
            g = torch.softmax(gate(h.detach()), dim=1)  # (B, n_shared); the gate does not train h
            fused = (g.unsqueeze(-1) * shared).sum(dim=1) + exp * balanced[:, s]  # (B, W)
            logits.append(tower(fused))  # (B, 1)
        return pick_scenario(torch.cat(logits, dim=1), scenario)
