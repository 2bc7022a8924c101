"""AdaptDHM for multi-scenario CTR (Li et al., 2022), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/adaptdhm.py``).

Mechanism: rows are routed without the scenario label. Each row's flat embedding (sparse fields
plus an embedding of the scenario index, gradient stopped) is compared by dot product with
``n_clusters`` unit-norm centres and sent to the closest one. In training, before routing, the
centres take ``router_iters`` soft k-means steps on the batch: ``r = softmax(x C^T)`` per row,
``c_k = sum_i r_ik x_i`` over the batch, ``C <- normalize(beta C + (1 - beta) c)``. In eval the
centres stay fixed (as released). Every cluster has its own FCN whose weights are
``W_shared ⊙ W_k`` (ReLU between layers, no biases); each row takes the logit of its cluster's FCN.

Defaults: the ML/Amazon/Douban script (fcn [64, 64], 3 clusters, beta 0.9, 3 EMA steps per
batch); weights xavier-uniform with the ReLU gain. Dense columns are not used (the scripts pass
``sparse_feas + scenario_feas``).

How we differ
-------------
* The released centres are a plain tensor attribute: outside the state dict, so a saved model
  loses them (a reloaded model routes with fresh random centres), and ``.to(device)`` does not
  move them. Here they are a buffer, saved and restored with the weights.
  ``checkpoint_centres=False`` makes the buffer non-persistent, as released.
* The released code creates one bias per layer and never uses it; we do not create them.
* We return the routed cluster's logit instead of its sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel, pick_scenario
from recwise.nn import FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Space


@dataclass(frozen=True)
class AdaptDHMConfig:
    """Hyperparameters of :class:`AdaptDHM` (defaults: the released ML script).

    Parameters
    ----------
    embed_dim : int, default 16
    fcn_dims : tuple of int, default (64, 64)
        Hidden widths of every cluster FCN (a 1-wide output layer follows).
    n_clusters : int, default 3
    beta : float, default 0.9
        EMA weight of the old centres in each soft k-means step.
    router_iters : int, default 3
        Soft k-means steps per training batch.
    checkpoint_centres : bool, default True
        False: the centres are left out of the state dict (released behaviour).
    """

    embed_dim: int = 16
    fcn_dims: tuple[int, ...] = (64, 64)
    n_clusters: int = 3
    beta: float = 0.9
    router_iters: int = 3
    checkpoint_centres: bool = True


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "fcn_dims": Choice(("32,32", "64,64", "128,128")),
}


@register("msr", "adaptdhm")
class AdaptDHM(MSRModel):
    """Cluster routing by EMA soft k-means, one shared ⊙ cluster FCN per cluster."""

    Config = AdaptDHMConfig
    search_space = SEARCH_SPACE
    centres: torch.Tensor

    def __init__(self, schema: Schema, config: AdaptDHMConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        self.scenario_embedding = nn.Embedding(self.n_scenarios, c.embed_dim)
        nn.init.normal_(self.scenario_embedding.weight, std=1e-4)
        d = (self.embedding.n_fields + 1) * c.embed_dim  # sparse fields + scenario
        centres = F.normalize(torch.randn(c.n_clusters, d), dim=1)
        self.register_buffer("centres", centres, persistent=c.checkpoint_centres)
        widths = [d, *c.fcn_dims, 1]
        pairs = list(zip(widths[:-1], widths[1:]))
        # weights are stored (in, out) and initialised in that layout, as released
        self.shared_w = nn.ParameterList(nn.Parameter(torch.empty(i, o)) for i, o in pairs)
        self.cluster_w = nn.ParameterList(nn.Parameter(torch.empty(c.n_clusters, i, o)) for i, o in pairs)
        gain = nn.init.calculate_gain("relu")
        for w in self.shared_w:
            nn.init.xavier_uniform_(w, gain=gain)
        for w in self.cluster_w:
            for w_k in w.data:
                nn.init.xavier_uniform_(w_k, gain=gain)

    @torch.no_grad()
    def route(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d) embeddings -> (B,) cluster index; in training, first moves the centres."""
        if self.training:
            for _ in range(self.config.router_iters):
                r = torch.softmax(x @ self.centres.T, dim=1)  # (B, K) soft assignment
                pulled = r.T @ x  # (K, d): assignment-weighted sum over the batch
                beta = self.config.beta
                self.centres.copy_(F.normalize(beta * self.centres + (1 - beta) * pulled, dim=1))
        return (x @ self.centres.T).argmax(dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Batch dict -> (B,) logits of each row's cluster FCN."""
        scen = self.scenario_embedding(batch["scenario"])  # (B, E)
        x = torch.cat([self.embedding.flat(batch, dense=False), scen], dim=1)  # (B, d)
        cluster = self.route(x.detach())
        last = len(self.shared_w) - 1
        outs = []
        for k in range(self.config.n_clusters):  # every cluster's FCN on every row, as released
            h = x
            for i, (shared, own) in enumerate(zip(self.shared_w, self.cluster_w)):
                h = h @ (shared * own[k])  # (B, out)
                if i < last:
                    h = torch.relu(h)
            outs.append(h)  # (B, 1)
        return pick_scenario(torch.cat(outs, dim=1), cluster)  # (B,)
