"""STAR for multi-scenario CTR (Sheng et al., CIKM 2021), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/star.py``).

Mechanism: the flat input (sparse embeddings, then dense columns) goes through a "domain norm"
that standardises it and then scales and shifts it with a shared ⊙ scenario gamma and a
shared + scenario beta. The star-topology FCN of scenario ``s`` uses weights ``W_shared ⊙ W_s``
and biases ``b_shared + b_s``; each of its layers, the 1-wide output layer included, is followed
by a scenario-specific BatchNorm1d and a ReLU. An auxiliary MLP on the same input adds its logit:
``logit = relu(bn(fcn_s(x))) + aux(x)``. As released, every scenario's FCN runs on every row of
the batch (so its BatchNorm sees the whole batch in training) and each row takes its own.

Defaults: the ML/Amazon/Douban script (fcn [128, 64, 32], aux [32]); weights kaiming-uniform and
biases U(0, 1) as released.

How we differ
-------------
* The domain norm standardises with the statistics of the *current batch*, in eval as well, so an
  eval prediction depends on the rest of the batch. We keep running statistics (as BatchNorm
  does) and use them in eval. ``norm_batch_stats_in_eval=True`` restores the released behaviour.
  In training both use the batch statistics over all rows (the released code does not split them
  by scenario, unlike the paper's partitioned norm; we keep that by default).
  ``norm_stats="scenario"`` gives the paper's partitioned normalisation: each scenario's rows are
  standardised with that scenario's batch statistics in training and its own running statistics
  in eval.
* The released model puts a ReLU (after a BatchNorm) on the 1-wide FCN output before adding the
  aux logit, so the scenario network can only push the logit up. We judge it a bug (the paper's
  FCN ends in a plain linear output) but keep it by default for faithfulness;
  ``output_relu=False`` drops the ReLU.
* We return the logit instead of ``sigmoid(logit)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from recwise.data.schema import Schema
from recwise.errors import ConfigError
from recwise.models.msr._base import MSRModel, pick_scenario
from recwise.nn import MLP, FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Space


@dataclass(frozen=True)
class STARConfig:
    """Hyperparameters of :class:`STAR` (defaults: the released ML script).

    Parameters
    ----------
    embed_dim : int, default 16
    fcn_dims : tuple of int, default (128, 64, 32)
        Hidden widths of the star-topology FCN (a 1-wide output layer follows).
    aux_dims : tuple of int, default (32,)
        Hidden widths of the auxiliary MLP (a Linear to 1 follows).
    norm_eps : float, default 1e-6
    norm_batch_stats_in_eval : bool, default False
        True: the domain norm uses the current batch's statistics in eval too (released behaviour;
        eval predictions then depend on batch composition).
    output_relu : bool, default True
        Apply ReLU to the 1-wide FCN output before the aux logit is added (released behaviour).
    norm_stats : {"shared", "scenario"}, default "shared"
        Statistics of the domain norm: one set over all rows (released code) or one set per
        scenario (the paper's partitioned normalisation).
    """

    embed_dim: int = 16
    fcn_dims: tuple[int, ...] = (128, 64, 32)
    aux_dims: tuple[int, ...] = (32,)
    norm_eps: float = 1e-6
    norm_batch_stats_in_eval: bool = False
    output_relu: bool = True
    norm_stats: str = "shared"

    def __post_init__(self) -> None:
        if self.norm_stats not in ("shared", "scenario"):
            raise ConfigError(f"model.norm_stats must be 'shared' or 'scenario'; got {self.norm_stats!r}")


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "fcn_dims": Choice(("64,32,16", "128,64,32", "256,128,64")),
    "aux_dims": Choice(("16", "32", "64")),
}


class StarFCN(nn.Module):
    """Per-scenario FCNs with weights ``shared ⊙ own`` and biases ``shared + own``.

    ``forward(x, s)`` runs scenario ``s``'s network: (B, widths[0]) -> (B, 1).
    """

    def __init__(self, widths: list[int], n_scenarios: int, *, output_relu: bool) -> None:
        super().__init__()
        pairs = list(zip(widths[:-1], widths[1:]))
        # weights are stored (in, out) and initialised in that layout, as released
        self.shared_w = nn.ParameterList(nn.Parameter(torch.empty(i, o)) for i, o in pairs)
        self.shared_b = nn.ParameterList(nn.Parameter(torch.empty(o)) for _, o in pairs)
        self.own_w = nn.ParameterList(nn.Parameter(torch.empty(n_scenarios, i, o)) for i, o in pairs)
        self.own_b = nn.ParameterList(nn.Parameter(torch.empty(n_scenarios, o)) for _, o in pairs)
        self.norms = nn.ModuleList(
            nn.ModuleList(nn.BatchNorm1d(o) for _, o in pairs) for _ in range(n_scenarios)
        )
        self.output_relu = output_relu
        for w in self.shared_w:
            nn.init.kaiming_uniform_(w)
        for w in self.own_w:
            for w_s in w.data:
                nn.init.kaiming_uniform_(w_s)
        for b in [*self.shared_b, *self.own_b]:
            nn.init.uniform_(b, 0.0, 1.0)

    def forward(self, x: torch.Tensor, s: int) -> torch.Tensor:
        last = len(self.shared_w) - 1
        for i, norm in enumerate(cast(nn.ModuleList, self.norms[s])):
            w = self.shared_w[i] * self.own_w[i][s]  # (in, out)
            x = norm(x @ w + self.shared_b[i] + self.own_b[i][s])
            if i < last or self.output_relu:
                x = torch.relu(x)
        return x  # (B, 1)


@register("msr", "star")
class STAR(MSRModel):
    """Star topology: shared ⊙ scenario FCN weights, domain norm, auxiliary network."""

    Config = STARConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: STARConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        d = self.embedding.flat_dim
        # domain norm: one set of statistics (running ones kept for eval), shared x scenario affine
        self.norm = nn.BatchNorm1d(d, eps=c.norm_eps, affine=False)
        if c.norm_stats == "scenario":  # partitioned norm: statistics per scenario
            self.scenario_norms = nn.ModuleList(
                nn.BatchNorm1d(d, eps=c.norm_eps, affine=False) for _ in range(self.n_scenarios)
            )
        self.norm_gamma = nn.Parameter(torch.ones(d))
        self.norm_beta = nn.Parameter(torch.zeros(d))
        self.norm_own_gamma = nn.Parameter(torch.ones(self.n_scenarios, d))
        self.norm_own_beta = nn.Parameter(torch.zeros(self.n_scenarios, d))
        self.fcn = StarFCN([d, *c.fcn_dims, 1], self.n_scenarios, output_relu=c.output_relu)
        self.aux = MLP(d, c.aux_dims)

    def _standardise(self, x: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        if self.config.norm_stats == "scenario":
            z = torch.empty_like(x)
            for s, norm in enumerate(cast("list[nn.BatchNorm1d]", self.scenario_norms)):
                rows = (scenario == s).nonzero(as_tuple=True)[0]
                if rows.numel() == 0:
                    continue
                xs = x.index_select(0, rows)
                if self.training and rows.numel() == 1:  # no batch statistics from one row
                    zs = F.batch_norm(xs, norm.running_mean, norm.running_var, training=False, eps=norm.eps)
                elif not self.training and self.config.norm_batch_stats_in_eval:
                    zs = F.batch_norm(xs, None, None, training=True, eps=norm.eps)
                else:
                    zs = norm(xs)
                z = z.index_copy(0, rows, zs)
            return z
        if not self.training and self.config.norm_batch_stats_in_eval:
            return F.batch_norm(x, None, None, training=True, eps=self.config.norm_eps)
        return self.norm(x)  # batch statistics in training, running statistics in eval

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Batch dict -> (B,) logits: own scenario's FCN output plus the aux logit."""
        x = self.embedding.flat(batch)  # (B, F*E + D)
        z = self._standardise(x, batch["scenario"])
        outs = []
        for s in range(self.n_scenarios):  # every scenario's network on every row, as released
            gamma = self.norm_gamma * self.norm_own_gamma[s]
            beta = self.norm_beta + self.norm_own_beta[s]
            outs.append(self.fcn(gamma * z + beta, s))  # (B, 1)
        fcn = pick_scenario(torch.cat(outs, dim=1), batch["scenario"])  # (B,)
        return fcn + self.aux(x).squeeze(1)
