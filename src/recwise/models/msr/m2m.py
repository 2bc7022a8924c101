"""M2M for multi-scenario CTR (Zhang et al., WSDM 2022), as in Scenario-Wise Rec.

Released code: https://github.com/Xiaopengli1/Scenario-Wise-Rec
(``scenario_wise_rec/models/multi_domain/m2m.py``).

Mechanism: the field embeddings (the sparse fields plus an embedding of the scenario index) go
through a ``nn.Transformer`` (source = target = the embeddings), then ``n_experts`` expert MLPs.
Two small MLPs turn the scenario embedding into a "scenario" and a "task" vector. The meta
attention scores each expert from [expert output, task vector] with a weight matrix and bias
*generated* from the scenario vector, softmaxes the scores over experts and pools the experts.
The meta tower applies a generated (H, H) weight and bias plus a residual, then an MLP [64, 32]
gives the logit. The small MLPs are torch-rechub MLPs with LeakyReLU(0.1) after BatchNorm.

Defaults: the released scripts: 4 experts of width 16; Transformer with 4 heads, 2 encoder and
2 decoder layers, feed-forward 16, dropout 0.1 (the torch default); output MLP [64, 32]. Dense
columns are not used (the scripts pass ``sparse_feas + scenario_feas``).

How we differ
-------------
* The released model feeds the 2-D (B, (F+1)*E) embedding to ``nn.Transformer``, which reads it as
  ONE unbatched sequence of length B: every sample attends to every other sample in the batch, so
  eval predictions depend on the rest of the batch. We attend over the fields of each sample
  instead: the sequence is the sample's F+1 field embeddings, ``d_model = embed_dim``, and the
  output is flattened back to (B, (F+1)*E). ``attend_across_batch=True`` restores the released
  behaviour (``d_model = (F+1)*E``, attention across the batch).
* We return the logit instead of ``sigmoid(logit)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recwise.data.schema import Schema
from recwise.errors import ConfigError
from recwise.models.msr._base import MSRModel
from recwise.nn import MLP, FeatureEmbedding
from recwise.registry import register
from recwise.train.space import Choice, Float, Space


@dataclass(frozen=True)
class M2MConfig:
    """Hyperparameters of :class:`M2M` (defaults: the released scripts).

    Parameters
    ----------
    embed_dim : int, default 16
    n_experts : int, default 4
    expert_dim : int, default 16
        Width of the experts, the scenario/task vectors and the meta tower.
    n_heads : int, default 4
    n_encoder_layers : int, default 2
    n_decoder_layers : int, default 2
    ff_dim : int, default 16
        Feed-forward width inside the Transformer.
    transformer_dropout : float, default 0.1
    mlp_dims : tuple of int, default (64, 32)
        Hidden widths of the output MLP (a Linear to 1 follows).
    attend_across_batch : bool, default False
        True: the released behaviour, the batch is one sequence (eval depends on the batch).
    """

    embed_dim: int = 16
    n_experts: int = 4
    expert_dim: int = 16
    n_heads: int = 4
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    ff_dim: int = 16
    transformer_dropout: float = 0.1
    mlp_dims: tuple[int, ...] = (64, 32)
    attend_across_batch: bool = False


# tuned by `recwise tune msr` on top of recwise.train.space.TRAIN_SPACE (lr, weight decay, batch size):
# the embedding width, the model's own widths (half, the default, double) and its dropout where it has one
SEARCH_SPACE: Space = {
    "embed_dim": Choice((8, 16, 32)),
    "expert_dim": Choice((8, 16, 32)),
    "mlp_dims": Choice(("32,16", "64,32", "128,64")),
    "transformer_dropout": Float(0.0, 0.5),
}


def _leaky(input_dim: int, output_dim: int) -> nn.Sequential:
    """torch-rechub's ``MLP(dims=[output_dim], activation="leakyrelu", output_layer=False)``."""
    return nn.Sequential(nn.Linear(input_dim, output_dim), nn.BatchNorm1d(output_dim), nn.LeakyReLU(0.1))


@register("msr", "m2m")
class M2M(MSRModel):
    """Transformer + experts, with meta attention and a meta tower generated from the scenario."""

    Config = M2MConfig
    search_space = SEARCH_SPACE

    def __init__(self, schema: Schema, config: M2MConfig) -> None:
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding.from_schema(schema, c.embed_dim)
        self.scenario_embedding = nn.Embedding(self.n_scenarios, c.embed_dim)
        nn.init.normal_(self.scenario_embedding.weight, std=1e-4)
        d = (self.embedding.n_fields + 1) * c.embed_dim  # sparse fields + scenario
        d_model = d if c.attend_across_batch else c.embed_dim
        if d_model % c.n_heads:
            raise ConfigError(f"option 'model.n_heads' must divide the attention width {d_model}; got {c.n_heads}")
        self.transformer = nn.Transformer(
            d_model=d_model, nhead=c.n_heads, num_encoder_layers=c.n_encoder_layers,
            num_decoder_layers=c.n_decoder_layers, dim_feedforward=c.ff_dim,
            dropout=c.transformer_dropout, batch_first=True,
        )
        h = c.expert_dim
        self.experts = nn.ModuleList(_leaky(d, h) for _ in range(c.n_experts))
        self.task_mlp = _leaky(c.embed_dim, h)
        self.scenario_mlp = _leaky(c.embed_dim, h)
        self.attn_weight = _leaky(h, 4 * h * h)  # generates the (2H, 2H) meta-attention matrix
        self.attn_bias = _leaky(h, 2 * h)
        self.attn_v = nn.Parameter(torch.ones(2 * h, 1))
        self.tower_weight = _leaky(h, h * h)  # generates the (H, H) meta-tower matrix
        self.tower_bias = _leaky(h, h)
        self.act = nn.LeakyReLU(0.1)
        self.output = MLP(h, c.mlp_dims)

    def _transform(self, fields: torch.Tensor) -> torch.Tensor:
        """(B, F+1, E) field embeddings -> (B, (F+1)*E) after the Transformer."""
        if self.config.attend_across_batch:
            seq = fields.flatten(1).unsqueeze(0)  # (1, B, (F+1)*E): the batch is the sequence
            return self.transformer(seq, seq).squeeze(0)
        return self.transformer(fields, fields).flatten(1)  # each sample's fields are its sequence

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Batch dict -> (B,) logits."""
        scen = self.scenario_embedding(batch["scenario"])  # (B, E)
        fields = torch.cat([self.embedding(batch["sparse"]), scen.unsqueeze(1)], dim=1)  # (B, F+1, E)
        z = self._transform(fields)  # (B, (F+1)*E)
        b, h, k = z.shape[0], self.config.expert_dim, self.config.n_experts
        scenario_vec = self.scenario_mlp(scen)  # (B, H)
        task_vec = self.task_mlp(scen)  # (B, H)
        experts = torch.stack([e(z) for e in self.experts], dim=1)  # (B, K, H)

        # meta attention: score each expert with weights generated from the scenario
        attn_in = torch.cat([experts, task_vec.unsqueeze(1).expand(b, k, h)], dim=2)  # (B, K, 2H)
        w = self.attn_weight(scenario_vec).view(b, 2 * h, 2 * h)
        scores = self.act(attn_in @ w + self.attn_bias(scenario_vec).unsqueeze(1))  # (B, K, 2H)
        alpha = torch.softmax((scores @ self.attn_v).squeeze(2), dim=1)  # (B, K)
        pooled = (alpha.unsqueeze(2) * experts).sum(dim=1)  # (B, H)

        # meta tower: generated linear layer plus a residual
        w = self.tower_weight(scenario_vec).view(b, h, h)
        out = self.act((pooled.unsqueeze(1) @ w).squeeze(1) + self.tower_bias(scenario_vec) + pooled)  # (B, H)
        return self.output(out).squeeze(1)
