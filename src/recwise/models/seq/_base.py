"""The contract every sequential model follows.

``Model(schema, config)``; the schema has one SEQUENCE field ``item_seq`` whose ``vocab_size``
counts item ids including padding 0. A batch holds ``item_seq`` (B, L) int64 and ``item_len`` (B,).

* ``encode(batch) -> (B, L, d)``: hidden state at every position;
* ``forward(batch) -> (B, V)``: logits over all item ids for the next item after the last real
  position (padding id 0 included; the task masks it at evaluation);
* ``score(h) -> (..., V)``: logits of hidden states against the (tied) item embeddings.

``examples`` lists the training-example constructions the model supports, default first
(``"sequence"``: a loss at every position, valid for causal models only; ``"prefix"``: RecBole's
every-prefix augmentation; ``"cloze"``: BERT4Rec's masked items).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from recwise.data.schema import FieldKind, Schema
from recwise.data.table import Batch
from recwise.errors import ConfigError

__all__ = ["Dropout", "FeedForward", "SeqModel", "dropout", "last_index"]


def last_index(item_seq: torch.Tensor, item_len: torch.Tensor) -> torch.Tensor:
    """Position of the last real item per row, for right or left padding: (B,) int64.

    A row whose last column holds an item is left-padded or full, so its last item sits at L-1;
    otherwise it is right-padded and its last item sits at ``item_len - 1``.
    """
    L = item_seq.shape[1]
    return torch.where(item_seq[:, -1] != 0, torch.full_like(item_len, L - 1), (item_len - 1).clamp(min=0))


def gather_last(h: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(B, L, d) -> (B, d) at each row's last real position."""
    idx = last_index(batch["item_seq"], batch["item_len"])
    return h[torch.arange(h.shape[0], device=h.device), idx]


class SeqModel(nn.Module):
    task: ClassVar[str] = "sequential"
    registry_name: ClassVar[str]
    examples: ClassVar[tuple[str, ...]] = ("sequence", "prefix")
    Config: ClassVar[type]
    item_embedding: nn.Embedding  # set by the subclasses that have an ID table

    def __init__(self, schema: Schema, config: object) -> None:
        super().__init__()
        seq = schema.of(FieldKind.SEQUENCE)
        if len(seq) != 1:
            raise ConfigError(f"a sequential model needs exactly one SEQUENCE field in its schema; got {len(seq)}")
        self.schema = schema
        self.config: Any = config  # an instance of cls.Config
        self.n_items = seq[0].vocab_size  # including padding 0

    def item_weights(self) -> torch.Tensor:
        """(V, d) output item embeddings (tied to the input table by default)."""
        return self.item_embedding.weight

    def score(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item_weights().t()

    def encode(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.score(gather_last(self.encode(batch), batch))


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """RecBole's transformer init: N(0, std) for linear/embedding weights, zero biases, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(0.0, std)
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        # 16 random bits per element from the default generator (seeded like every torch RNG),
        # three per int64 (``random_`` leaves the sign bit 0): P(drop) = round(p * 65536) / 65536
        n = x.numel()
        bits = torch.empty((n + 2) // 3, dtype=torch.int64, device=x.device).random_()
        u16 = bits.view(torch.int16).view(-1, 4)[:, :3].reshape(-1)[:n].view(x.shape)
        # a float mask holding 0 or 1/(1-p): multiplying by it is several times cheaper on CPU than
        # masked_fill (measured), in forward and in backward
        mask = (u16 >= (round(p * 65536) - 32768)).to(x.dtype).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return g * mask, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with masks drawn as raw random bits: the same distribution as
    ``F.dropout`` (p rounded to 1/65536) at a fraction of its CPU cost (``bernoulli_`` dominated
    SASRec's training profile). Falls back to ``F.dropout`` on CUDA."""
    if not training or p == 0.0:
        return x
    if x.is_cuda:
        return nn.functional.dropout(x, p, True)
    return _Dropout.apply(x, p)


class Dropout(nn.Module):
    """:func:`dropout` as a module (a drop-in for ``nn.Dropout``)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class FeedForward(nn.Module):
    """RecBole's point-wise FFN: ``LN(x + Drop(W2 Drop(GELU(W1 x))))``."""

    def __init__(self, d: int, inner: int, dropout: float, eps: float = 1e-12) -> None:
        super().__init__()
        self.w1 = nn.Linear(d, inner)
        self.w2 = nn.Linear(inner, d)
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(nn.functional.gelu(self.w1(x)))
        return self.norm(x + self.dropout(self.w2(h)))
