"""HAMUR for multi-scenario CTR (Li et al., CIKM 2023), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/hamur.py``: ``HamurSmall`` and ``HamurLarge``).

Each scenario has its own backbone MLP (Linear -> BatchNorm -> ReLU per layer, then Linear -> 1)
over the flat input (sparse embeddings + dense columns). A shared hyper-network (an MLP whose
last layer has ``k * k`` units, every layer Linear -> BatchNorm -> ReLU) turns each sample's input
into an instance matrix ``H`` (k, k). After the last ``n_adapters`` hidden layers an adapter cell
is inserted, with per-sample weights ``W = U @ H @ V``:

    a   = sigmoid(h @ (U1 H V1) + b1)        # down-projection to adapter_dim
    z   = a @ (U2 H V2) + b2                 # up-projection back to the layer width
    h' = h + gamma * norm(z) + beta          # "domain norm", then the short-cut

``U``, ``V``, ``b``, ``gamma`` and ``beta`` are shared by all scenarios (one set per adapter
cell); ``U`` and ``V`` start as all-ones and ``b`` as zeros, as released. Each row takes its own
scenario's backbone. Defaults: ``HamurSmall`` with the ML script's sizes (fcn [256, 128],
hyper [64], k = 35, adapter width 32, one adapter cell). ``HamurLarge`` (Ali-CCP) is
``n_adapters=2`` with its seven fcn widths and k = 65.

How we differ from the released code
------------------------------------
* Bug fixed: the released "domain norm" always normalises with the current batch's mean and
  (unbiased) variance, in eval too, so a sample's prediction depends on the rest of its batch.
  We keep running statistics during training (momentum 0.1, one set per scenario backbone and
  adapter cell, since every backbone normalises its own branch) and use them at eval.
  ``adapter_norm="batch"`` restores the released batch-statistics norm.
* ``h @ (U H V)`` is computed as ``((h @ U) @ H) @ V``: the same product without building a
  (B, width, adapter_dim) weight tensor per sample.
* The hyper-network runs once per batch instead of once per scenario (same output; its
  BatchNorm running statistics then take one update per batch instead of one per scenario).
* The model returns logits; the released one returns sigmoid probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel, pick_scenario
from recwise.nn import MLP, FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Space


@dataclass(frozen=True)
class HAMURConfig:
    embed_dim: int = 16
    fcn_dims: tuple[int, ...] = (256, 128)
    hyper_dims: tuple[int, ...] = (64,)
    k: int = 35  # the instance matrix H is k x k
    adapter_dim: int = 32
    n_adapters: int = 1  # adapter cells after the last n hidden layers (HamurLarge: 2)
    # "running": running statistics at eval (fixed); "batch": the released norm, batch statistics always
    adapter_norm: Literal["running", "batch"] = "running"

    def __post_init__(self) -> None:
        if not 1 <= self.n_adapters <= len(self.fcn_dims):
            raise ValueError(f"n_adapters must be in 1..len(fcn_dims)={len(self.fcn_dims)}; got {self.n_adapters}")
        if self.k < 1 or self.adapter_dim < 1:
            raise ValueError(f"k and adapter_dim must be >= 1; got k={self.k}, adapter_dim={self.adapter_dim}")


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "fcn_dims": Choice(("128,64", "256,128", "512,256")),
}


class AdapterNorm(nn.Module):
    """Per-feature normalisation of the adapter output, shared affine, statistics per scenario branch.

    ``mode="batch"`` always uses the batch's mean and unbiased variance (the released code).
    ``mode="running"`` does so in training while tracking running estimates, used in eval.
    """

    running_mean: torch.Tensor  # buffers (mode "running")
    running_var: torch.Tensor

    def __init__(self, dim: int, n_scenarios: int, mode: str, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.mode, self.eps, self.momentum = mode, eps, momentum
        if mode == "running":
            self.register_buffer("running_mean", torch.zeros(n_scenarios, dim))
            self.register_buffer("running_var", torch.ones(n_scenarios, dim))

    def forward(self, z: torch.Tensor, branch: int) -> torch.Tensor:
        """z (B, dim) of scenario ``branch``'s backbone -> (B, dim)."""
        if self.mode == "batch" or self.training:
            mean, var = z.mean(dim=0), z.var(dim=0)
            if self.mode == "running":
                with torch.no_grad():
                    self.running_mean[branch].lerp_(mean, self.momentum)
                    self.running_var[branch].lerp_(var, self.momentum)
        else:
            mean, var = self.running_mean[branch], self.running_var[branch]
        return self.weight * (z - mean) / torch.sqrt(var + self.eps) + self.bias


class AdapterCell(nn.Module):
    """Down-project, sigmoid, up-project with per-sample weights U @ H @ V, norm, residual."""

    def __init__(self, width: int, adapter_dim: int, k: int, n_scenarios: int, norm: str) -> None:
        super().__init__()
        self.u_down = nn.Parameter(torch.ones(width, k))
        self.v_down = nn.Parameter(torch.ones(k, adapter_dim))
        self.b_down = nn.Parameter(torch.zeros(adapter_dim))
        self.u_up = nn.Parameter(torch.ones(adapter_dim, k))
        self.v_up = nn.Parameter(torch.ones(k, width))
        self.b_up = nn.Parameter(torch.zeros(width))
        self.norm = AdapterNorm(width, n_scenarios, norm)

    def forward(self, h: torch.Tensor, instance: torch.Tensor, branch: int) -> torch.Tensor:
        """h (B, width), instance H (B, k, k) -> (B, width)."""
        down = torch.bmm((h @ self.u_down).unsqueeze(1), instance).squeeze(1) @ self.v_down  # (B, adapter_dim)
        a = torch.sigmoid(down + self.b_down)
        up = torch.bmm((a @ self.u_up).unsqueeze(1), instance).squeeze(1) @ self.v_up  # (B, width)
        return h + self.norm(up + self.b_up, branch)


@register("msr", "hamur")
class HAMUR(MSRModel):
    """Per-scenario backbones with hyper-network-generated adapter cells.

    Parameters
    ----------
    schema : Schema
    config : HAMURConfig
        ``embed_dim`` (16), ``fcn_dims`` ((256, 128)), ``hyper_dims`` ((64,)), ``k`` (35),
        ``adapter_dim`` (32), ``n_adapters`` (1), ``adapter_norm`` ("running"; "batch" is released).
    """

    Config = HAMURConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: HAMURConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        d_in = self.embedding.flat_dim
        widths = (d_in, *c.fcn_dims)
        self.backbones = nn.ModuleList(
            nn.ModuleList(MLP(w_in, (w_out,), output_layer=False) for w_in, w_out in zip(widths, c.fcn_dims))
            for _ in range(self.n_scenarios)
        )
        self.heads = nn.ModuleList(nn.Linear(c.fcn_dims[-1], 1) for _ in range(self.n_scenarios))
        self.hyper_net = MLP(d_in, (*c.hyper_dims, c.k * c.k), output_layer=False)
        first = len(c.fcn_dims) - c.n_adapters  # adapters follow hidden layers first..L-1
        self.adapter_after = tuple(range(first, len(c.fcn_dims)))
        self.adapters = nn.ModuleList(
            AdapterCell(c.fcn_dims[i], c.adapter_dim, c.k, self.n_scenarios, c.adapter_norm) for i in self.adapter_after
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.embedding.flat(batch)  # (B, F*E + D)
        k = self.config.k
        instance = self.hyper_net(x).view(-1, k, k)  # (B, k, k)
        logits = []
        for s, (backbone, head) in enumerate(zip(self.backbones, self.heads)):
            h = x
            for i, layer in enumerate(cast(nn.ModuleList, backbone)):
                h = layer(h)  # (B, fcn_dims[i])
                if i in self.adapter_after:
                    h = self.adapters[self.adapter_after.index(i)](h, instance, s)
            logits.append(head(h))  # (B, 1)
        return pick_scenario(torch.cat(logits, dim=1), batch["scenario"])
