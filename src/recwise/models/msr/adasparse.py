"""AdaSparse for multi-scenario CTR (Yang et al., CIKM 2022), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/adasparse.py``, pruner in ``basic/layers.py``).

Mechanism: an MLP whose input and every hidden layer are multiplied by a domain-adaptive pruner.
A pruner reads [scenario embedding, layer input] through a bias-free Linear to ``v`` (one value per
unit) and turns it into weighting factors ``pi``:

* ``binarization``: ``sign(sigmoid(alpha * v) - eps)``
* ``scaling``:      ``beta * sigmoid(v)``, times ``sign(. - eps)``
* ``fusion``:       ``beta * sigmoid(alpha * v)``, times ``sign(. - eps)`` (the default)

As released, a factor below ``eps`` becomes its *negative* (``x * sign(x - eps)``), not zero; we
keep that. The MLP input is [scenario embedding, pruned sparse embeddings]; each hidden layer is
Linear -> BatchNorm1d -> ReLU -> Dropout, then pruned; a Linear gives the logit. ``alpha`` starts at
1 and grows by ``delta_alpha`` at the start of each forward call, which sharpens the sigmoid.

Defaults: the ML/Amazon/Douban script (mlp [32, 32], dropout 0.2, fusion, eps 1e-2, beta 2,
alpha 1, delta_alpha 1e-4). The scenario index is embedded (width 16, as the scripts'
``scenario_feas``); dense columns are not used.

How we differ
-------------
* The released ``alpha`` is a plain tensor, outside the state dict, that grows on *every* forward
  call, eval included: an eval prediction depends on how many batches were predicted before it,
  and a reloaded model restarts from alpha = 1. Here ``alpha`` is a buffer (checkpointed with the
  weights) that grows only in training. ``alpha_grows_in_eval=True`` restores the released growth
  in eval.
* We return the logit instead of ``sigmoid(logit)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel
from recwise.nn import FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Float, Space


@dataclass(frozen=True)
class AdaSparseConfig:
    """Hyperparameters of :class:`AdaSparse` (defaults: the released ML script).

    Parameters
    ----------
    embed_dim : int, default 16
        Width of the sparse-field and scenario embeddings.
    mlp_dims : tuple of int, default (32, 32)
    dropout : float, default 0.2
    form : {"fusion", "scaling", "binarization"}, default "fusion"
        How the pruner turns its logits into weighting factors.
    epsilon : float, default 1e-2
        Factors below it flip sign (the released "pruning").
    beta : float, default 2.0
        Scale of the factors (scaling and fusion).
    alpha : float, default 1.0
        Initial sharpness of the sigmoid (binarization and fusion).
    delta_alpha : float, default 1e-4
        Growth of alpha per training forward call.
    alpha_grows_in_eval : bool, default False
        True: alpha also grows on eval calls (released behaviour; eval then depends on call count).
    """

    embed_dim: int = 16
    mlp_dims: tuple[int, ...] = (32, 32)
    dropout: float = 0.2
    form: Literal["fusion", "scaling", "binarization"] = "fusion"
    epsilon: float = 1e-2
    beta: float = 2.0
    alpha: float = 1.0
    delta_alpha: float = 1e-4
    alpha_grows_in_eval: bool = False


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "mlp_dims": Choice(("16,16", "32,32", "64,64")),
    "dropout": Float(0.0, 0.5),
}


class Pruner(nn.Module):
    """Domain-adaptive weighting factors: (B, S_dim), (B, n) -> (B, n)."""

    def __init__(self, scenario_dim: int, n_units: int, c: AdaSparseConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(scenario_dim + n_units, n_units, bias=False)
        self.form, self.epsilon, self.beta = c.form, c.epsilon, c.beta

    def forward(self, scenario: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        v = self.linear(torch.cat([scenario, x], dim=1))
        if self.form == "binarization":
            return torch.sign(torch.sigmoid(alpha * v) - self.epsilon)
        factor = self.beta * torch.sigmoid(v if self.form == "scaling" else alpha * v)
        return factor * torch.sign(factor - self.epsilon)


@register("msr", "adasparse")
class AdaSparse(MSRModel):
    """An MLP pruned unit by unit with factors computed from the scenario embedding."""

    Config = AdaSparseConfig
    search_space = SEARCH_SPACE
    alpha: torch.Tensor

    def __init__(self, schema: Schema, config: AdaSparseConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        self.scenario_embedding = nn.Embedding(self.n_scenarios, c.embed_dim)
        nn.init.normal_(self.scenario_embedding.weight, std=1e-4)
        self.register_buffer("alpha", torch.tensor(float(c.alpha)))
        agnostic = self.embedding.n_fields * c.embed_dim
        self.input_pruner = Pruner(c.embed_dim, agnostic, c)
        widths = [c.embed_dim + agnostic, *c.mlp_dims]
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(i, o), nn.BatchNorm1d(o), nn.ReLU(), nn.Dropout(c.dropout))
            for i, o in zip(widths[:-1], widths[1:])
        )
        self.pruners = nn.ModuleList(Pruner(c.embed_dim, o, c) for o in c.mlp_dims)
        self.head = nn.Linear(widths[-1], 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Batch dict -> (B,) logits. Grows alpha first when training (or always, if so configured)."""
        if self.training or self.config.alpha_grows_in_eval:
            with torch.no_grad():
                self.alpha += self.config.delta_alpha
        scen = self.scenario_embedding(batch["scenario"])  # (B, E)
        agn = self.embedding.flat(batch, dense=False)  # (B, F*E)
        agn = self.input_pruner(scen, agn, self.alpha) * agn
        x = torch.cat([scen, agn], dim=1)  # (B, E + F*E)
        for layer, pruner in zip(self.layers, self.pruners):
            x = layer(x)
            x = pruner(scen, x, self.alpha) * x  # (B, width)
        return self.head(x).squeeze(1)
