"""The contract every CTR backbone of the feature-selection task follows.

``Model(schema, config)`` with ``config`` an instance of the model's frozen ``Config`` dataclass.
The forward pass is split in two so that a feature-selection module can sit between them::

    emb = model.embed(batch)     # (B, F, E): one row per input field
    logit = model.head(emb)      # (B,): every backbone layer reads only ``emb``
    model(batch) == model.head(model.embed(batch))

``fields`` lists the input fields in the order of ``emb``'s second axis: the sparse fields, then
the dense ones, each in schema order. A sparse field is looked up in one shared embedding table
(N(0, init_std) rows, ERASE's 0.01); a dense field is its value times a learned vector of the same
width, so dense fields can be gated, permuted and ranked exactly like sparse ones.

Every path of a backbone (Wide&Deep's wide linear part, DeepFM's FM, DCN's cross layers,
FiBiNET's SENET + bilinear layers, the MLP towers) reads the ``emb`` passed to ``head``. There is
no separate 1-dim "wide" embedding: as in ERASE's released code, Wide&Deep's wide part is a
linear layer over the flattened embeddings, so a gate that scales ``emb`` scales every path.

Logits, not probabilities: the sigmoid lives in the loss (BCE with logits), which is ERASE's
sigmoid + BCELoss computed stably. A model may add a regulariser through ``extra_loss()``.
Models do no I/O and no device moves.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from recwise.config import config_from_dict
from recwise.data.schema import Schema
from recwise.data.table import Batch
from recwise.errors import ConfigError
from recwise.nn import FeatureEmbedding

__all__ = ["CTRModel", "feature_fields"]


def feature_fields(schema: Schema) -> list[str]:
    """The input fields of a CTR model: sparse then dense, each in schema order."""
    return [f.name for f in schema.sparse] + [f.name for f in schema.dense]


class CTRModel(nn.Module):
    """Base class: checks the config, builds the per-field embedding and defines ``forward``.

    The subclass's ``Config`` must have ``embed_dim`` and ``init_std``; it implements ``head``.
    """

    Config: ClassVar[type[Any]]  # Any: isinstance(config, Config) then keeps config's fields visible
    registry_name: ClassVar[str]
    task: ClassVar[str] = "ctr"

    def __init__(self, schema: Schema, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.Config):
            raise ConfigError(
                f"{type(self).__name__} expects a {self.Config.__name__}; got {type(config).__name__} "
                f"(build it with {type(self).__name__}.Config(...) or from_options)"
            )
        self.fields = feature_fields(schema)
        if not self.fields:
            raise ConfigError(f"{type(self).__name__} needs at least one sparse or dense field in the schema")
        self.schema = schema
        self.config = config
        self.embed_dim = int(config.embed_dim)
        self.num_fields = len(self.fields)
        self.n_sparse = len(schema.sparse)
        self.n_dense = len(schema.dense)
        self.embedding = (
            FeatureEmbedding(schema.sparse, self.embed_dim, init_std=config.init_std) if self.n_sparse else None
        )
        if self.n_dense:
            self.dense_embedding = nn.Parameter(torch.empty(self.n_dense, self.embed_dim))
            nn.init.normal_(self.dense_embedding, mean=0.0, std=config.init_std)
        else:
            self.register_parameter("dense_embedding", None)

    @classmethod
    def from_options(cls, schema: Schema, options: dict[str, Any] | None = None) -> CTRModel:
        """Build from a plain dict of options; unknown keys are ConfigErrors naming the closest one."""
        return cls(schema, config_from_dict(cls.Config, options or {}, where="model"))

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, F, E): sparse fields' embedding rows, then dense value x learned vector per dense field."""
        parts = []
        if self.embedding is not None:
            parts.append(self.embedding(batch["sparse"]))
        if self.dense_embedding is not None:
            parts.append(batch["dense"].unsqueeze(-1) * self.dense_embedding)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def head(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, F, E) -> (B,) logits. Every layer of the backbone lives here."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(self.embed(batch))

    def extra_loss(self) -> torch.Tensor | None:
        """A regulariser added to the task loss after each forward (None: nothing)."""
        return None
