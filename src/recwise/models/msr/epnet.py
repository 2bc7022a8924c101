"""EPNet for multi-scenario CTR (Chang et al., "PEPNet", KDD 2023), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/epnet.py``; ``GateNU`` in ``basic/layers.py``).

EPNet is the embedding-personalisation half of PEPNet. A gate network ``GateNU``
(Linear -> ReLU -> Linear -> sigmoid, scaled by ``gamma`` = 2) reads the scenario embedding and
the *detached* agnostic input, and rescales the agnostic input element-wise before a plain MLP
tower. The agnostic input is every sparse embedding followed by the dense columns; the scenario
embedding is this model's own table over ``batch["scenario"]`` (the ML script declares
``domain_indicator`` as the only scenario feature). EPNet has a single tower: the scenario
enters only through the gate. Defaults: the ML/Amazon/Douban script (fcn [128, 64, 32]).

How we differ from the released code
------------------------------------
* The released model builds its tower as ``MLP(agn_dims, fcn_dims)``; torch-rechub's ``MLP``
  takes ``output_layer`` as its second positional argument, so ``fcn_dims`` is read as a truthy
  ``output_layer`` and the tower is a single ``Linear(agn_dims, 1)``. We build the MLP with the
  fcn widths (Linear -> BatchNorm -> ReLU per width, then Linear -> 1). ``single_linear_mlp=True``
  restores the released single Linear layer.
* The model returns logits; the released one returns sigmoid probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.models.msr._base import MSRModel
from recwise.nn import MLP, FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Float, Space


@dataclass(frozen=True)
class EPNetConfig:
    embed_dim: int = 16
    fcn_dims: tuple[int, ...] = (128, 64, 32)
    gate_hidden_dim: int = 0  # 0: as wide as the gate output (the agnostic input), as GateNU does
    gate_gamma: float = 2.0  # the gate's sigmoid is scaled to (0, gamma)
    dropout: float = 0.0
    single_linear_mlp: bool = False  # True: the released bug, the tower is one Linear(agn_dim, 1)

    def __post_init__(self) -> None:
        if self.gate_gamma <= 0:
            raise ValueError(f"gate_gamma must be > 0; got {self.gate_gamma}")


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "fcn_dims": Choice(("64,32,16", "128,64,32", "256,128,64")),
    "dropout": Float(0.0, 0.5),
}


class GateNU(nn.Module):
    """``gamma * sigmoid(Linear(ReLU(Linear(x))))``: (B, in_dim) -> (B, out_dim) in (0, gamma)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 0, gamma: float = 2.0) -> None:
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.sigmoid(self.net(x))


@register("msr", "epnet")
class EPNet(MSRModel):
    """Scenario-gated embedding personalisation, then one shared MLP tower.

    Parameters
    ----------
    schema : Schema
        Sparse fields and dense columns form the agnostic input; ``batch["scenario"]`` the gate's
        scenario input.
    config : EPNetConfig
        ``embed_dim`` (16), ``fcn_dims`` ((128, 64, 32)), ``gate_hidden_dim`` (0 = gate output width),
        ``gate_gamma`` (2.0), ``dropout`` (0.0), ``single_linear_mlp`` (False; True is the released
        one-Linear tower).
    """

    Config = EPNetConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: EPNetConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        self.scenario_embedding = nn.Embedding(self.n_scenarios, c.embed_dim)
        nn.init.normal_(self.scenario_embedding.weight, mean=0.0, std=1e-4)
        agn_dim = self.embedding.flat_dim
        self.gate = GateNU(c.embed_dim + agn_dim, agn_dim, c.gate_hidden_dim, c.gate_gamma)
        tower_dims = () if c.single_linear_mlp else c.fcn_dims
        self.tower = MLP(agn_dim, tower_dims, dropout=c.dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        agn = self.embedding.flat(batch)  # (B, F*E + D)
        sce = self.scenario_embedding(batch["scenario"])  # (B, E)
        # The gate sees the agnostic input without back-propagating into it (stop-gradient).
        gate = self.gate(torch.cat([sce, agn.detach()], dim=1))  # (B, F*E + D) in (0, gamma)
        return self.tower(agn * gate).squeeze(1)  # (B,)
