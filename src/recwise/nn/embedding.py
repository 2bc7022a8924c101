"""Embedding of all sparse fields in one table (one gather per batch), plus the flat input."""

from __future__ import annotations

import torch
from torch import nn

from recwise.data.schema import Field, Schema

__all__ = ["FeatureEmbedding"]


class FeatureEmbedding(nn.Module):
    offsets: torch.Tensor  # buffer
    """Embed every sparse field of a schema with its own rows of one shared table.

    Parameters
    ----------
    fields : sequence of Field
        The sparse fields, in the column order of ``batch["sparse"]``.
    dim : int
        Embedding width (the same for every field).
    init_std : float, default 1e-4
        Rows are drawn from N(0, init_std), as Scenario-Wise Rec does.

    ``forward(sparse)`` maps (B, F) local ids to (B, F, dim); ``flat(batch)`` gives the usual
    MLP input, the flattened embeddings followed by the dense columns: (B, F * dim + D).
    """

    def __init__(self, fields: tuple[Field, ...], dim: int, *, n_dense: int = 0, init_std: float = 1e-4) -> None:
        super().__init__()
        vocab = [f.vocab_size for f in fields]
        offsets = (torch.tensor([0, *vocab[:-1]], dtype=torch.int64).cumsum(0) if vocab
                   else torch.zeros(0, dtype=torch.int64))
        self.register_buffer("offsets", offsets, persistent=False)
        self.table = nn.Embedding(max(sum(vocab), 1), dim)
        nn.init.normal_(self.table.weight, mean=0.0, std=init_std)
        self.n_fields = len(fields)
        self.dim = dim
        self.n_dense = n_dense

    @classmethod
    def from_schema(cls, schema: Schema, dim: int, *, init_std: float = 1e-4) -> FeatureEmbedding:
        return cls(schema.sparse, dim, n_dense=len(schema.dense), init_std=init_std)

    @property
    def flat_dim(self) -> int:
        return self.n_fields * self.dim + self.n_dense

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        """(B, F) int64 -> (B, F, dim)."""
        return self.table(sparse + self.offsets)

    def flat(self, batch: dict[str, torch.Tensor], *, dense: bool = True) -> torch.Tensor:
        """(B, F * dim [+ D]): flattened embeddings, then the dense columns when ``dense``."""
        emb = self(batch["sparse"]).flatten(1)
        if dense and self.n_dense:
            return torch.cat([emb, batch["dense"]], dim=1)
        return emb
