"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Follows RecBole 1.2.1's ``SASRec`` (``recbole/model/sequential_recommender/sasrec.py``):
item + learned position embeddings -> LayerNorm -> Dropout -> N x [multi-head causal attention
with residual + LayerNorm, point-wise FFN], LayerNorm eps 1e-12, N(0, 0.02) init, output at the
last real position scored against the tied item table, CE over all items.

Differences that do not change the function: attention uses ``scaled_dot_product_attention``
(causal, plus a key-padding mask only when a batch is left-padded) and, in :meth:`forward`, the
last layer is computed only at the gathered position (its keys and values still span the whole
window), which gives the same output as computing every position and gathering.

Examples: ``sequence`` (default) or ``prefix``.

LLM-enhanced options (LLMERS survey families; all off by default, and the default model is
RecBole's, unchanged). They read precomputed text vectors from ``model.text_path`` (a safetensors
file written by ``recwise run llmers``: ``item_text`` (V, D), ``item_knowledge`` (V, D),
``user_knowledge`` (U, D); row 0 of the item tables is padding). No LLM or encoder runs inside the
model: the vectors are fixed inputs, so serving costs what the plain model costs plus a lookup.

* ``item_init=text`` (model enhancement, LLM2X / LLMInit style): the item table starts as the
  text vectors' first ``hidden_size`` principal components, rescaled to std ``text_init_std``
  (0.02, the random init's), then trains as usual.
* ``item_tower=alpharec`` (model enhancement, AlphaRec style): no ID table; an item is
  ``MLP(frozen text vector)`` (Linear, LeakyReLU, Linear), used as input and output embedding.
* ``knowledge=kar`` (knowledge enhancement, KAR style): LLM-written item and user profiles,
  encoded, enter through hybrid-expert adaptors: ``item = id + A_item(item_knowledge)`` and the
  sequence state gets ``+ A_user(user_knowledge[user])`` (batches must carry ``user``);
  ``kar_user=false`` keeps the item side only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from recwise.data.schema import Schema
from recwise.data.table import Batch
from recwise.errors import ConfigError
from recwise.models.seq._base import Dropout, FeedForward, SeqModel, dropout, init_normal, last_index
from recwise.registry import register


@dataclass(frozen=True)
class SASRecConfig:
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    hidden_dropout: float = 0.5
    attn_dropout: float = 0.5
    max_len: int = 50
    # LLM-enhanced options (see the module docstring); the defaults are plain SASRec
    item_init: Literal["random", "text"] = "random"
    item_tower: Literal["id", "alpharec"] = "id"
    knowledge: Literal["none", "kar"] = "none"
    text_path: str = ""  # safetensors file with item_text / item_knowledge / user_knowledge
    text_init_std: float = 0.02
    tower_hidden: int = 256  # AlphaRec MLP hidden width
    kar_experts: int = 4  # KAR hybrid-expert adaptor: experts per adaptor (2 shared + the rest dedicated)
    kar_user: bool = True  # KAR: also the user profile (false: item knowledge only)

    def __post_init__(self) -> None:
        if self.hidden_size % self.n_heads:
            raise ConfigError(f"option 'model.hidden_size' ({self.hidden_size}) must be divisible by "
                              f"'model.n_heads' ({self.n_heads})")
        if self.item_init == "text" and self.item_tower == "alpharec":
            raise ConfigError("options 'model.item_init=text' and 'model.item_tower=alpharec' exclude each other "
                              "(the AlphaRec tower has no ID table to initialise)")
        if self.uses_text and not self.text_path:
            raise ConfigError("options 'model.item_init=text', 'model.item_tower=alpharec' and 'model.knowledge=kar' "
                              "need 'model.text_path' (a safetensors file of text vectors; `recwise run llmers` "
                              "writes one)")
        if self.text_init_std <= 0 or self.tower_hidden < 1 or self.kar_experts < 1:
            raise ConfigError("options 'model.text_init_std', 'model.tower_hidden' and 'model.kar_experts' must be > 0")

    @property
    def uses_text(self) -> bool:
        return self.item_init != "random" or self.item_tower != "id" or self.knowledge != "none"


def load_text_vectors(path: str | Path, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Read float32 tables ``names`` from a safetensors file (never unpickled)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise ConfigError(f"option 'model.text_path': file {path} not found") from None
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"option 'model.text_path': {path} is not a safetensors file ({exc})") from None
    missing = [n for n in names if n not in tensors]
    if missing:
        raise ConfigError(f"option 'model.text_path': {path} has no table {missing[0]!r} (has {sorted(tensors)})")
    return {n: tensors[n].float() for n in names}


def pca_rows(x: torch.Tensor, d: int, std: float) -> torch.Tensor:
    """``x`` (n, D) -> its first ``d`` principal-component scores (n, d), scaled to overall std ``std``."""
    xc = x.double() - x.double().mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)
    if vh.shape[0] < d:
        raise ConfigError(f"text vectors have rank space {vh.shape[0]} < model.hidden_size {d}; lower hidden_size")
    z = xc @ vh[:d].T
    return (z * (std / z.std().clamp_min(1e-12))).float()


class ExpertAdaptor(nn.Module):
    """KAR's hybrid-expert adaptor, one knowledge type: ``sum_e softmax(g(x))_e * MLP_e(x)``.

    The two shared experts of KAR's design become the first two of the ``n_experts`` MLPs; with one
    knowledge type per adaptor every expert is then gated the same way (KAR paper, Sec. 3.3).
    """

    def __init__(self, d_in: int, d_out: int, n_experts: int, hidden: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))
                                     for _ in range(n_experts))
        self.gate = nn.Linear(d_in, n_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate(x).softmax(-1)
        return torch.stack([e(x) for e in self.experts], -1).mul(w.unsqueeze(-2)).sum(-1)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
               dropout_p: float = 0.0, is_causal: bool = False) -> torch.Tensor:
    """Softmax attention with :func:`dropout` on the weights (CPU training; SDPA's semantics)."""
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if is_causal:
        L, S = scores.shape[-2:]
        attn_mask = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, -float("inf"))
    return dropout(scores.softmax(-1), dropout_p, True) @ v


class Block(nn.Module):
    def __init__(self, c: SASRecConfig) -> None:
        super().__init__()
        self.n_heads, self.attn_dropout = c.n_heads, c.attn_dropout
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.out = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = Dropout(c.hidden_dropout)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.ffn = FeedForward(c.hidden_size, c.inner_size, c.hidden_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, query: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, d). ``query``: (B,) positions to compute (the rest skipped), else all."""
        B, L, d = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=-1)
        k = k.view(B, L, H, d // H).transpose(1, 2)
        v = v.view(B, L, H, d // H).transpose(1, 2)
        drop = self.attn_dropout if self.training else 0.0
        attend = _attention if drop > 0 and not x.is_cuda else F.scaled_dot_product_attention
        if query is None:
            q = q.view(B, L, H, d // H).transpose(1, 2)
            ctx = attend(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=mask is None)
            resid = x
        else:  # one query row per example, at position query[b]; keys beyond it are masked
            rows = torch.arange(B, device=x.device)
            q = q[rows, query].view(B, 1, H, d // H).transpose(1, 2)
            allowed = torch.arange(L, device=x.device)[None, :] <= query[:, None]
            if mask is not None:
                allowed = allowed & mask[rows, 0, query]
            ctx = attend(q, k, v, attn_mask=allowed[:, None, None, :], dropout_p=drop)
            resid = x[rows, query][:, None]
        ctx = ctx.transpose(1, 2).reshape(B, -1, d)
        h = self.norm(resid + self.dropout(self.out(ctx)))
        return self.ffn(h)


@register("sequential", "sasrec")
class SASRec(SeqModel):
    """SASRec. ``SASRec(schema, SASRec.Config(n_layers=2))``."""

    Config = SASRecConfig
    examples = ("sequence", "prefix")
    item_text: torch.Tensor  # buffers of the text options (_build_text)
    item_knowledge: torch.Tensor
    user_knowledge: torch.Tensor

    def __init__(self, schema: Schema, config: SASRecConfig | None = None) -> None:
        config = config or SASRecConfig()
        super().__init__(schema, config)
        c = config
        if c.item_tower == "id":
            self.item_embedding = nn.Embedding(self.n_items, c.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(c.max_len, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.dropout = Dropout(c.hidden_dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        if c.uses_text:  # built after the plain modules, so the default model's init draws are unchanged
            self._build_text(c)
        self.apply(init_normal)
        if c.item_init == "text":
            with torch.no_grad():
                self.item_embedding.weight[1:] = pca_rows(self.item_text[1:], c.hidden_size, c.text_init_std)
                self.item_embedding.weight[0] = 0.0
            del self.item_text  # used once, for the init; not kept in the model

    def _build_text(self, c: SASRecConfig) -> None:
        names = (("item_text",) if c.item_init == "text" or c.item_tower == "alpharec" else ()) + (
            ("item_knowledge",) + (("user_knowledge",) if c.kar_user else ()) if c.knowledge == "kar" else ())
        tables = load_text_vectors(c.text_path, names)
        for n in names:
            if n != "user_knowledge" and tables[n].shape[0] != self.n_items:
                raise ConfigError(f"option 'model.text_path': table {n!r} in {c.text_path} has {tables[n].shape[0]} "
                                  f"rows; the schema has {self.n_items} item ids (padding included)")
            # frozen: buffers, saved with the model, never trained
            self.register_buffer(n, tables[n], persistent=n != "item_text" or c.item_tower == "alpharec")
        if c.item_tower == "alpharec":
            self.tower = nn.Sequential(nn.Linear(self.item_text.shape[1], c.tower_hidden), nn.LeakyReLU(),
                                       nn.Linear(c.tower_hidden, c.hidden_size))
        if c.knowledge == "kar":
            self.item_adaptor = ExpertAdaptor(self.item_knowledge.shape[1], c.hidden_size, c.kar_experts,
                                              c.tower_hidden)
            if c.kar_user:
                self.user_adaptor = ExpertAdaptor(self.user_knowledge.shape[1], c.hidden_size, c.kar_experts,
                                                  c.tower_hidden)

    def train(self, mode: bool = True) -> SASRec:
        """Entering train mode forgets the eval-time tables: optimizers may change parameters
        without bumping their ``_version`` (torch's fused Adam on CPU does not), so the version
        key alone would keep serving the tables of an earlier epoch."""
        if mode:
            for name in ("_table_cache", "_user_cache"):
                self.__dict__.pop(name, None)
        return super().train(mode)

    def item_weights(self) -> torch.Tensor:
        """(V, d) item representations: the ID table, or the AlphaRec tower; plus KAR's item knowledge.

        In eval mode without autograd the computed table is kept until a parameter changes (serving
        computes it once, as a deployed model would store it)."""
        c = self.config
        if c.item_tower == "id" and c.knowledge == "none":
            return self.item_embedding.weight
        if self.training or torch.is_grad_enabled():
            return self._item_table()
        key = tuple((t.data_ptr(), t._version) for t in [*self.parameters(), *self.buffers()])
        cached = getattr(self, "_table_cache", None)
        if cached is None or cached[0] != key:
            self._table_cache = (key, self._item_table())
        return self._table_cache[1]

    def _item_table(self) -> torch.Tensor:
        c = self.config
        table = self.item_embedding.weight if c.item_tower == "id" else self.tower(self.item_text)
        if c.knowledge == "kar":
            table = table + self.item_adaptor(self.item_knowledge)
        pad = torch.ones(table.shape[0], 1, device=table.device, dtype=table.dtype)
        pad[0] = 0.0
        return table * pad  # padding id 0 has a zero representation, as padding_idx gives the ID table

    def _user_vector(self, batch: Batch) -> torch.Tensor:
        if "user" not in batch:
            raise ConfigError("option 'model.knowledge=kar' needs batches with a 'user' column")
        user = batch["user"]
        if int(user.max()) >= self.user_knowledge.shape[0]:
            raise ConfigError(f"user id {int(user.max())} has no row in 'user_knowledge' "
                              f"({self.user_knowledge.shape[0]} users) from {self.config.text_path}")
        if self.training or torch.is_grad_enabled():
            return self.user_adaptor(self.user_knowledge[user])
        # serving: every user's adapted vector computed once (KAR pre-stores them), then looked up
        key = tuple((t.data_ptr(), t._version) for t in [*self.user_adaptor.parameters(), self.user_knowledge])
        cached = getattr(self, "_user_cache", None)
        if cached is None or cached[0] != key:
            self._user_cache = (key, self.user_adaptor(self.user_knowledge))
        return self._user_cache[1][user]

    def _embed(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        seq = batch["item_seq"]
        L = seq.shape[1]
        if L > self.config.max_len:
            raise ConfigError(f"input length {L} exceeds the model's max_len {self.config.max_len}")
        c = self.config
        plain = c.item_tower == "id" and c.knowledge == "none"  # plain ID table (random or text-initialised)
        items = self.item_embedding(seq) if plain else F.embedding(seq, self.item_weights())
        x = items + self.position_embedding.weight[:L]
        x = self.dropout(self.norm(x))
        mask = None
        if bool((seq[:, 0] == 0).any()):  # left padding: padded keys must be masked out
            causal = torch.ones(L, L, dtype=torch.bool, device=seq.device).tril()
            keys = (seq != 0)[:, None, None, :] | torch.eye(L, dtype=torch.bool, device=seq.device)
            mask = causal & keys  # (B, 1, L, L)
        return x, mask

    def encode(self, batch: Batch) -> torch.Tensor:
        x, mask = self._embed(batch)
        for block in self.blocks:
            x = block(x, mask)
        if self.config.knowledge == "kar" and self.config.kar_user:
            x = x + self._user_vector(batch)[:, None]
        return x

    def forward(self, batch: Batch) -> torch.Tensor:
        x, mask = self._embed(batch)
        idx = last_index(batch["item_seq"], batch["item_len"])
        for block in self.blocks[:-1]:
            x = block(x, mask)
        h = self.blocks[-1](x, mask, query=idx)[:, 0]
        if self.config.knowledge == "kar" and self.config.kar_user:
            h = h + self._user_vector(batch)
        return self.score(h)
