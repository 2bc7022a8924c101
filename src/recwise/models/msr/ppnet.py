"""PPNet for multi-scenario CTR (Chang et al., "PEPNet", KDD 2023), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/ppnet.py``; ``GateNU`` and ``MLP`` in ``basic/layers.py``).

PPNet is the parameter-personalisation half of PEPNet. Inputs split in two:

* id features (user and item ids; the ML script uses ``user_id, movie_id``, Ali-CCP fields 101
  and 205), embedded into ``id``;
* the agnostic input ``agn``: every other sparse embedding, the scenario embedding (this model's
  own table over ``batch["scenario"]``) and the dense columns.

Each scenario has a tower of MLP layers (Linear -> BatchNorm -> ReLU -> Dropout). After each
layer the hidden vector is multiplied element-wise by a per-layer ``GateNU`` (Linear -> ReLU ->
Linear -> sigmoid, scaled by ``gamma`` = 2) that reads ``[id, stop_gradient(agn)]``; a final
Linear gives the logit. Each row takes its own scenario's tower. Defaults: the ML script
(fcn [128, 64, 32]).

How we differ from the released code
------------------------------------
* Bug fixed: the released tower feeds the *gate input* ``[id, agn.detach()]`` to its first MLP
  layer instead of ``agn``; ``agn`` appears nowhere else undetached, so the agnostic embeddings
  (and the scenario embedding) never receive a gradient. We feed ``agn`` to the tower, as PEPNet
  does. ``tower_input="gate_input"`` restores the released wiring.
* ``id_fields`` names the id features; empty (the default) picks the two sparse fields with the
  largest vocabularies, which are the user and item ids on every Scenario-Wise Rec dataset.
* The model returns logits; the released one returns sigmoid probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.errors import ConfigError
from recwise.models.msr._base import MSRModel, pick_scenario
from recwise.nn import MLP, FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Float, Space


@dataclass(frozen=True)
class PPNetConfig:
    embed_dim: int = 16
    fcn_dims: tuple[int, ...] = (128, 64, 32)
    id_fields: tuple[str, ...] = ()  # empty: the two sparse fields with the largest vocabularies
    gate_gamma: float = 2.0  # each gate's sigmoid is scaled to (0, gamma)
    dropout: float = 0.0
    # "agnostic": the tower reads the agnostic input (fixed); "gate_input": the released wiring,
    # the tower reads [id, agn.detach()] and the agnostic embeddings never train.
    tower_input: Literal["agnostic", "gate_input"] = "agnostic"

    def __post_init__(self) -> None:
        if not self.fcn_dims:
            raise ValueError("fcn_dims needs at least one width (each layer has its own gate)")
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

    def __init__(self, in_dim: int, out_dim: int, gamma: float = 2.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.sigmoid(self.net(x))


class PPTower(nn.Module):
    """One scenario's tower: MLP layers, each rescaled by its own gate, then Linear -> 1."""

    def __init__(self, input_dim: int, gate_dim: int, dims: tuple[int, ...], dropout: float, gamma: float) -> None:
        super().__init__()
        widths = (input_dim, *dims)
        self.layers = nn.ModuleList(
            MLP(w_in, (w_out,), dropout=dropout, output_layer=False) for w_in, w_out in zip(widths, dims)
        )
        self.gates = nn.ModuleList(GateNU(gate_dim, w, gamma) for w in dims)
        self.out = nn.Linear(dims[-1], 1)

    def forward(self, x: torch.Tensor, gate_input: torch.Tensor) -> torch.Tensor:
        """x (B, input_dim), gate_input (B, gate_dim) -> (B, 1)."""
        for layer, gate in zip(self.layers, self.gates):
            x = layer(x) * gate(gate_input)  # (B, width)
        return self.out(x)


@register("msr", "ppnet")
class PPNet(MSRModel):
    """Per-scenario towers whose every layer is gated by the id embeddings.

    Parameters
    ----------
    schema : Schema
        ``id_fields`` (or the two largest sparse fields) are the ids; the other sparse fields,
        the scenario and the dense columns form the agnostic input.
    config : PPNetConfig
        ``embed_dim`` (16), ``fcn_dims`` ((128, 64, 32)), ``id_fields`` (() = auto), ``gate_gamma``
        (2.0), ``dropout`` (0.0), ``tower_input`` ("agnostic"; "gate_input" is the released bug).
    """

    Config = PPNetConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: PPNetConfig) -> None:
        super().__init__(schema, config)
        c = config
        names = [f.name for f in schema.sparse]
        if c.id_fields:
            unknown = [n for n in c.id_fields if n not in names]
            if unknown:
                raise ConfigError(f"option 'model.id_fields': {unknown} are not sparse fields of the schema; "
                                  f"choose from {names}")
            id_cols = sorted(names.index(n) for n in c.id_fields)
        else:  # the two largest vocabularies: user and item ids
            by_size = sorted(range(len(names)), key=lambda i: -schema.sparse[i].vocab_size)
            id_cols = sorted(by_size[:2])
        other_cols = [i for i in range(len(names)) if i not in id_cols]
        self.register_buffer("id_cols", torch.tensor(id_cols, dtype=torch.int64), persistent=False)
        self.register_buffer("other_cols", torch.tensor(other_cols, dtype=torch.int64), persistent=False)

        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        self.scenario_embedding = nn.Embedding(self.n_scenarios, c.embed_dim)
        nn.init.normal_(self.scenario_embedding.weight, mean=0.0, std=1e-4)
        id_dim = len(id_cols) * c.embed_dim
        agn_dim = (len(other_cols) + 1) * c.embed_dim + len(schema.dense)
        gate_dim = id_dim + agn_dim
        tower_in = agn_dim if c.tower_input == "agnostic" else gate_dim
        self.towers = nn.ModuleList(
            PPTower(tower_in, gate_dim, c.fcn_dims, c.dropout, c.gate_gamma) for _ in range(self.n_scenarios)
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        emb = self.embedding(batch["sparse"])  # (B, F, E)
        ids = emb[:, self.id_cols].flatten(1)  # (B, F_id * E)
        agn = [emb[:, self.other_cols].flatten(1), self.scenario_embedding(batch["scenario"])]
        if "dense" in batch and self.embedding.n_dense:
            agn.append(batch["dense"])
        agn_x = torch.cat(agn, dim=1)  # (B, (F - F_id + 1) * E + D)
        gate_input = torch.cat([ids, agn_x.detach()], dim=1)  # stop-gradient into the agnostic part
        tower_x = agn_x if self.config.tower_input == "agnostic" else gate_input
        logits = torch.cat([tower(tower_x, gate_input) for tower in self.towers], dim=1)  # (B, S)
        return pick_scenario(logits, batch["scenario"])
