"""PAD: pre-train, align and disentangle (Wang et al., SIGIR 2025), as released.

Follows ``Applied-Machine-Learning-Lab/PAD`` (``model/model_mmd_ada.py``, ``model/encoders.py``,
``data_utils/dataset.py``, ``data_utils/metrics.py``); the sequence encoder of every tower is
recwise's SASRec (:class:`~recwise.models.seq.sasrec.SASRec`, RecBole's blocks), composed here, so
PAD and its backbone differ only in what PAD adds. Three models, one per phase:

* :class:`PADPhase1` (``Model2_id``): a SASRec ID tower trained with BCE on the next item and one
  sampled negative per position.
* :class:`PADPhase2` (``Model2_transfer``): the *alignment tower*, a copy of the phase-1 tower
  (``freeze()`` copies the ID table and the encoder); an item is ``CAT(id, T(text))`` =
  ``GELU(Linear(Dropout([id ; T(text)])))`` with ``T = Linear(D -> d) + GELU`` then ``text_layers``
  x (Dropout, Linear, GELU); loss = rec BCE + ``align_weight`` x MK-MMD(T(text), id) over the items
  of the batch (:func:`mk_mmd`, tllib's estimator), or 0.01 x InfoNCE (``align_loss=infonce``,
  ``Model2_align``).
* :class:`PADPhase3` (``Model_new3_3``): three experts, each a SASRec tower scoring by dot
  product: ID (phase 1), aligned (phase 2) and text-only (a fresh ``T3`` + encoder); the scores
  are mixed per candidate item by ``w_e(i) = sigmoid(a_e[bin(i)]) / sum_e' sigmoid(a_e'[bin(i)])``
  over 11 entries (0 = padding, bins 1..10 from most popular to coldest), initialised as released:
  ID ``linspace(1, 0)``, aligned ``linspace(gamma2, gamma2 - 1)`` with ``gamma2 = -4``, text
  ``linspace(0, 1)``. Everything trains (``freeze6``).

A model's ``forward(batch) -> (B, V)`` scores all item ids for the next item after the last
position (left padding, the latest ``max_len`` items), so :func:`recwise.tasks.sequential.evaluate`
and :mod:`recwise.metrics.sequential` evaluate it. The text vectors (``(V, D)``, row 0 padding)
are a non-persistent buffer: they come from phase 0 (:mod:`recwise.tasks.pad.protocol`), not from the
checkpoint.

PAD is not registered under task ``sequential``: it needs the item-text matrix besides the schema.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional as F

from recwise.data.schema import FieldKind, Schema
from recwise.data.table import Batch
from recwise.errors import ConfigError
from recwise.models.seq._base import gather_last
from recwise.models.seq.sasrec import SASRec, SASRecConfig

__all__ = ["PADConfig", "PADPhase1", "PADPhase2", "PADPhase3", "gaussian_kernel", "gate_init", "info_nce",
           "mk_mmd", "mk_mmd_reference", "sample_negatives"]

MMD_ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)  # 2^-3 .. 2^1 (tllib GaussianKernel alphas, as released)


@dataclass(frozen=True)
class PADConfig:
    """PAD's options; defaults are the released Prime Pantry scripts' (``train_amazon_id_pantry*.py``).

    The encoder is recwise's SASRec with ``hidden_size``, ``n_layers``, ``n_heads``, ``inner_size``
    and one dropout (``dropout``, the release's ``drop_rate``, for hidden and attention).
    """

    hidden_size: int = 128  # embedding_dim
    n_layers: int = 5  # transformer_block
    n_heads: int = 2
    inner_size: int = 512  # 4 x d, as the release's TransformerEncoder
    dropout: float = 0.1  # drop_rate
    max_len: int = 20  # max_seq_len
    text_layers: int = 4  # mo_dnn_layers: MLP layers after T's first Linear+GELU
    fuse: Literal["cat", "add"] = "cat"  # item_tower modal_cat
    align_loss: Literal["mmd", "infonce", "none"] = "mmd"
    align_weight: float = 0.2  # 0.2 x MK-MMD (Model2_transfer); infonce: 0.01 (Model2_align)
    mmd_alphas: tuple[float, ...] = MMD_ALPHAS
    mmd_estimator: Literal["tllib", "biased", "linear"] = "tllib"  # linear: tllib's linear=True, O(n)
    mmd_impl: Literal["fast", "reference"] = "fast"  # reference: the first autograd version, every row
    mmd_pad_rows: bool = True  # the release feeds every row of the batch, padding rows included
    mmd_group: int = 16  # sequences per MMD estimate (the release's batch per GPU; DDP averages)
    infonce_temperature: float = 0.1
    n_bins: int = 10
    gamma2: float = -4.0  # aligned expert's gate init: linspace(gamma2, gamma2 - 1, n_bins + 1)
    gate_init: Literal["released", "uniform"] = "released"

    def __post_init__(self) -> None:
        if self.hidden_size % self.n_heads:
            raise ConfigError(f"option 'model.hidden_size' ({self.hidden_size}) must be divisible by "
                              f"'model.n_heads' ({self.n_heads})")
        for name in ("hidden_size", "n_layers", "n_heads", "inner_size", "max_len", "mmd_group", "n_bins"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option 'model.{name}' must be >= 1; got {getattr(self, name)}")
        if self.text_layers < 0:
            raise ConfigError(f"option 'model.text_layers' must be >= 0; got {self.text_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"option 'model.dropout' must be in [0, 1); got {self.dropout}")
        if not self.mmd_alphas or min(self.mmd_alphas) <= 0:
            raise ConfigError(f"option 'model.mmd_alphas' must be positive numbers; got {self.mmd_alphas}")

    def sasrec(self) -> SASRecConfig:
        return SASRecConfig(hidden_size=self.hidden_size, n_layers=self.n_layers, n_heads=self.n_heads,
                            inner_size=self.inner_size, hidden_dropout=self.dropout, attn_dropout=self.dropout,
                            max_len=self.max_len)


# ----------------------------------------------------------------------------------- losses


def gaussian_kernel(x: torch.Tensor, alpha: float, d2: torch.Tensor | None = None) -> torch.Tensor:
    """tllib's ``GaussianKernel(alpha)`` with running statistics: ``exp(-d2 / (2 sigma2))`` where
    ``d2`` are the pairwise squared L2 distances of the rows of ``x`` and ``sigma2 = alpha *
    mean(d2)`` (the mean over the whole matrix, diagonal zeros included, detached). Leading
    dimensions of ``x`` are independent batches, each with its own bandwidth."""
    d2 = _sq_dists(x) if d2 is None else d2
    sigma2 = alpha * d2.detach().mean((-2, -1), keepdim=True)
    return torch.exp(-d2 / (2 * sigma2.clamp_min(1e-12)))


def _sq_dists(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared L2 distances of the rows of ``x`` (..., n, d) -> (..., n, n): one matmul
    (``|a|^2 + |b|^2 - 2 a.b``), clamped at 0, exact zeros on the diagonal."""
    sq = x.pow(2).sum(-1)
    d2 = torch.baddbmm(sq[..., :, None] + sq[..., None, :], x, x.transpose(-1, -2), alpha=-2) if x.ndim == 3 \
        else sq[..., :, None] + sq[..., None, :] - 2 * (x @ x.transpose(-1, -2))
    d2 = d2.clamp_min(0.0)
    d2.diagonal(dim1=-2, dim2=-1).zero_()
    return d2


def _block_coefs(n: torch.Tensor, estimator: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, b, c) with MMD = a (S_ss + S_tt) + b (S_st + S_ts) + c, where S_xy is the sum of the
    kernel over all row pairs of blocks x, y (diagonal included) and ``n`` rows per sample."""
    if estimator == "biased":
        return 1 / n**2, -1 / n**2, torch.zeros_like(n)
    a = 1 / (n * (n - 1))  # tllib: within-sample pairs without the diagonal (K_ii = number of kernels)
    return a, -1 / n**2, 2.0 / (n - 1)


_CHUNK_FLOATS = 1 << 18  # rows of the distance matrix per pass: 1 MiB of float32, kept in the L2 cache


class _QuadraticMKMMD(torch.autograd.Function):
    """Quadratic MK-MMD over groups ``x = [zs; zt]`` (G, 2m, d) with row weights ``w`` (G, 2m).

    The bandwidth comes from the weighted mean squared distance in O(m d) (``2 W sum w|x|^2 - 2
    |sum w x|^2``, in float64); then, a block of rows at a time so that the block stays in cache,
    one matmul gives the squared distances, one ``exp`` and repeated squaring the kernels (when the
    alphas halve, as released), and the block's kernel sums and kernel derivative are taken at
    once. Only the (G, 2m, 2m) derivative matrix is kept; the gradient is two matmuls."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, alphas: tuple[float, ...], estimator: str,
                n_kernels: int) -> torch.Tensor:
        G, N, _ = x.shape
        m = N // 2
        ws, wt = w.clone(), w.clone()
        ws[:, m:] = 0
        wt[:, :m] = 0
        n = ws.sum(-1)  # rows per sample (weights count repeated rows)
        xd, wd = x.double(), w.double()
        sq = x.pow(2).sum(-1)
        total_w = wd.sum(-1)
        pair_sum = 2 * total_w * (wd * xd.pow(2).sum(-1)).sum(-1) - 2 * (wd[..., None] * xd).sum(-2).pow(2).sum(-1)
        mean = (pair_sum / total_w**2).clamp_min(1e-12).to(x.dtype)  # mean over the joint (2n x 2n) matrix
        a_sorted = sorted(alphas, reverse=True)
        halving = len(a_sorted) > 1 and all(a_sorted[i] == 2 * a_sorted[i + 1] for i in range(len(a_sorted) - 1))
        scale = [(-1 / (2 * al * mean))[:, None, None] for al in a_sorted]
        pq = torch.stack([ws, wt], -1)  # (G, N, 2)
        deriv = torch.empty(G, N, N, dtype=x.dtype, device=x.device)  # sum_k exp(-d2 / (2 a_k m)) / (2 a_k)
        ksum = torch.zeros(G, N, 2, dtype=x.dtype, device=x.device)  # (kernel sum) @ pq, row by row
        xt = x.transpose(1, 2)
        step = max(1, _CHUNK_FLOATS // max(G * N, 1))
        for lo in range(0, N, step):
            hi = min(lo + step, N)
            d2 = torch.baddbmm(sq[:, lo:hi, None] + sq[:, None, :], x[:, lo:hi], xt, alpha=-2).clamp_min_(0.0)
            d2.diagonal(offset=lo, dim1=-2, dim2=-1).zero_()
            dblock = deriv[:, lo:hi]
            if halving:
                u = torch.exp(d2 * scale[0])
                total = u.clone()
                torch.mul(u, 1 / (2 * a_sorted[0]), out=dblock)
                for al in a_sorted[1:]:
                    u.mul_(u)
                    total.add_(u)
                    dblock.add_(u, alpha=1 / (2 * al))
            else:
                total = torch.zeros_like(d2)
                dblock.zero_()
                for al, sc in zip(a_sorted, scale):
                    u = torch.exp(d2 * sc)
                    total.add_(u)
                    dblock.add_(u, alpha=1 / (2 * al))
            ksum[:, lo:hi] = total @ pq
        a, b, c = _block_coefs(n.clamp_min(2), estimator)  # a sample of < 2 rows: MMD 0 (below)
        a, b, c = (torch.where(n >= 2, v, torch.zeros_like(v)) for v in (a, b, c))
        s = pq.transpose(1, 2) @ ksum  # (G, 2, 2): [[S_ss, S_st], [S_ts, S_tt]]
        loss = a * (s[:, 0, 0] + s[:, 1, 1]) + b * (s[:, 0, 1] + s[:, 1, 0]) + c
        if estimator == "tllib":
            loss = loss - 2 * n * n_kernels * a  # the diagonal (K_ii = n_kernels) is not a pair
        # dL/dx_i = 4 (rowsum(G)_i x_i - (G x)_i) with G_ij = -deriv_ij / m * w_i w_j coef(i, j)
        deriv.mul_((-1 / mean)[:, None, None])
        ctx.save_for_backward(x, ws, wt, deriv, a, b)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, ws, wt, deriv, a, b = ctx.saved_tensors
        cs = (a[:, None] * ws + b[:, None] * wt)[..., None]  # column weights seen from a zs row
        ct = (b[:, None] * ws + a[:, None] * wt)[..., None]  # ... from a zt row
        rhs = torch.cat([cs * x, cs, ct * x, ct], -1)  # (G, N, 2d + 2)
        out = deriv @ rhs
        d = x.shape[-1]
        gx_s, r_s, gx_t, r_t = out[..., :d], out[..., d:d + 1], out[..., d + 1:2 * d + 1], out[..., 2 * d + 1:]
        gs = ws[..., None] * (r_s * x - gx_s)
        gt = wt[..., None] * (r_t * x - gx_t)
        gx = 4 * (gs + gt) * grad[:, None, None]
        return gx, None, None, None, None


def mk_mmd(zs: torch.Tensor, zt: torch.Tensor, alphas: Sequence[float] = MMD_ALPHAS,
           estimator: Literal["tllib", "biased", "linear"] = "tllib", weights: torch.Tensor | None = None
           ) -> torch.Tensor:
    """Multiple-kernel MMD between the rows of ``zs`` and ``zt`` (``(..., n, d)`` each).

    The kernel is the sum of :func:`gaussian_kernel` over ``alphas`` on the stacked ``[zs; zt]``
    (one bandwidth per kernel from the joint batch). ``tllib`` (as released, tllib's
    ``MultipleKernelMaximumMeanDiscrepancy(linear=False)``): within-sample means exclude the
    diagonal (``1 / (n (n - 1))``), the cross term is ``-1 / n^2`` over all pairs, plus the constant
    ``2 / (n - 1)``. ``biased``: the V-statistic ``mean(Kss) + mean(Ktt) - 2 mean(Kst)``, exactly
    zero for identical samples. ``linear``: tllib's ``linear=True`` estimator, O(n) kernel values
    (pairs of consecutive rows), the bandwidth from the joint mean squared distance in O(n d).
    Leading dimensions are independent estimates (shape ``...``).

    ``weights`` (``(..., n)``, quadratic estimators only): row ``i`` of both samples stands for
    ``weights[i]`` identical rows (0 = absent), so a batch with repeated items is estimated on its
    distinct rows with the same value. The quadratic estimators compute one squared-distance
    matrix per estimate, shared by all kernels, and their gradient in closed form.
    """
    if zs.shape != zt.shape:
        raise ConfigError(f"MK-MMD needs two samples of the same shape; got {tuple(zs.shape)} and {tuple(zt.shape)}")
    n = zs.shape[-2]
    lead = zs.shape[:-2]
    if estimator == "linear":
        if weights is not None:
            raise ConfigError("the linear MK-MMD estimator takes no row weights")
        return _linear_mk_mmd(zs, zt, alphas) if n >= 2 else zs.new_zeros(lead)
    if n < 2:
        return zs.new_zeros(lead)
    w = zs.new_ones(*lead, n) if weights is None else weights.to(zs.dtype)
    x = torch.cat([zs, zt], -2).reshape(-1, 2 * n, zs.shape[-1]).contiguous()
    ww = torch.cat([w, w], -1).reshape(-1, 2 * n)
    out = _QuadraticMKMMD.apply(x, ww, tuple(alphas), estimator, len(alphas))
    return out.reshape(lead)


def _linear_mk_mmd(zs: torch.Tensor, zt: torch.Tensor, alphas: Sequence[float]) -> torch.Tensor:
    """tllib's ``linear=True`` index matrix: for ``i``, ``j = (i + 1) % n``, ``(k(s_i, s_j) +
    k(t_i, t_j) - k(s_i, t_j) - k(s_j, t_i)) / n``, plus tllib's ``2 / (n - 1)``; the bandwidths from
    the mean of the joint (2n x 2n) squared-distance matrix, ``2 mean|x|^2 - 2 |mean x|^2``."""
    n = zs.shape[-2]
    x = torch.cat([zs, zt], -2).detach()
    mean = (2 * x.pow(2).sum(-1).mean(-1) - 2 * x.mean(-2).pow(2).sum(-1)).clamp_min(1e-12)[..., None]
    ss, tt = zs.roll(-1, -2), zt.roll(-1, -2)

    def k(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        d2 = (p - q).pow(2).sum(-1)
        return sum(torch.exp(-d2 / (2 * al * mean)) for al in alphas)  # type: ignore[return-value]

    pairs = k(zs, ss) + k(zt, tt) - k(zs, tt) - k(ss, zt)
    return pairs.mean(-1) + 2.0 / (n - 1)


# ------------------------------------------------------------------- reference MK-MMD (before)


def _sq_dists_reference(x: torch.Tensor) -> torch.Tensor:
    sq = x.pow(2).sum(-1)
    d2 = (sq[..., :, None] + sq[..., None, :] - 2 * (x @ x.transpose(-1, -2))).clamp_min(0.0)
    return d2 * (1 - torch.eye(x.shape[-2], device=x.device, dtype=x.dtype))


def mk_mmd_reference(zs: torch.Tensor, zt: torch.Tensor, alphas: Sequence[float] = MMD_ALPHAS,
                     estimator: Literal["tllib", "biased"] = "tllib") -> torch.Tensor:
    """The first implementation of :func:`mk_mmd` (``model.mmd_impl=reference``), kept to check
    and time the fast one against: plain autograd over every row (repeated items included), the
    five kernels from one distance matrix by repeated squaring."""
    if zs.shape != zt.shape:
        raise ConfigError(f"MK-MMD needs two samples of the same shape; got {tuple(zs.shape)} and {tuple(zt.shape)}")
    n = zs.shape[-2]
    if n < 2:
        return zs.new_zeros(zs.shape[:-2])
    x = torch.cat([zs, zt], -2)
    d2 = _sq_dists_reference(x)
    a = sorted(alphas, reverse=True)
    if len(a) > 1 and all(a[i] == 2 * a[i + 1] for i in range(len(a) - 1)):
        u = gaussian_kernel(x, a[0], d2)
        k = u
        for _ in a[1:]:
            u = u * u
            k = k + u
    else:
        k = sum(gaussian_kernel(x, al, d2) for al in alphas)  # type: ignore[assignment]
    kss, ktt, kst = k[..., :n, :n], k[..., n:, n:], k[..., :n, n:]
    if estimator == "biased":
        return kss.mean((-2, -1)) + ktt.mean((-2, -1)) - 2 * kst.mean((-2, -1))
    diag = kss.diagonal(dim1=-2, dim2=-1).sum(-1) + ktt.diagonal(dim1=-2, dim2=-1).sum(-1)
    off = (kss.sum((-2, -1)) + ktt.sum((-2, -1)) - diag) / (n * (n - 1))
    return off - 2 * kst.sum((-2, -1)) / (n * n) + 2.0 / (n - 1)


def info_nce(query: torch.Tensor, positive: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """``info_nce.InfoNCE()`` with no explicit negatives: the other rows are the negatives;
    cosine similarities / ``temperature``, CE on the diagonal."""
    q, p = F.normalize(query, dim=-1), F.normalize(positive, dim=-1)
    logits = q @ p.t() / temperature
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device))


def sample_negatives(target_seq: torch.Tensor, user: torch.Tensor, seen: torch.Tensor, n_items: int,
                     rounds: int = 20) -> torch.Tensor:
    """One uniform negative item id in ``1..n_items`` per position, avoiding the user's items.

    ``seen`` is the sorted tensor of keys ``user * (n_items + 1) + item`` of every user's training
    items (the release draws ``randint(1, item_num)`` until the item is not in the user's sequence).
    Rejection runs vectorised for ``rounds`` rounds; positions still unlucky after that (only for a
    user who has seen almost every item) keep their last draw. Positions without a target get 0.
    """
    shape = target_seq.shape
    neg = torch.randint(1, n_items + 1, shape, device=target_seq.device)
    base = user.view(-1, *([1] * (len(shape) - 1))) * (n_items + 1)
    for _ in range(rounds):
        key = base + neg
        pos = torch.searchsorted(seen, key.reshape(-1)).clamp(max=max(len(seen) - 1, 0)).view(shape)
        bad = seen[pos] == key if len(seen) else torch.zeros_like(key, dtype=torch.bool)
        if not bool(bad.any()):
            break
        neg = torch.where(bad, torch.randint(1, n_items + 1, shape, device=neg.device), neg)
    return torch.where(target_seq > 0, neg, torch.zeros_like(neg))


def gate_init(n_bins: int, gamma2: float, mode: str = "released") -> torch.Tensor:
    """(3, n_bins + 1) initial gate logits, rows ID / aligned / text; column 0 is padding.

    ``released``: ``linspace(1, 0)``, ``linspace(gamma2, gamma2 - 1)``, ``linspace(0, 1)`` (the ID
    expert leads on popular items, the text expert on cold ones); ``uniform``: all zeros.
    """
    if mode == "uniform":
        return torch.zeros(3, n_bins + 1)
    m = n_bins + 1
    return torch.stack([torch.linspace(1, 0, m, dtype=torch.float64), torch.linspace(gamma2, gamma2 - 1, m,
                        dtype=torch.float64), torch.linspace(0, 1, m, dtype=torch.float64)]).float()


# ----------------------------------------------------------------------------------- modules


def _xavier(module: nn.Module) -> None:
    """The release's ``_init_weights`` for its MLPs: xavier-normal weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class TextProjection(nn.Module):
    """``FC_Layers``: ``GELU(Linear(D -> d))`` then ``layers`` x (Dropout, Linear(d, d), GELU)."""

    def __init__(self, text_dim: int, d: int, layers: int, dropout: float) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Linear(text_dim, d), nn.GELU()]
        for _ in range(layers):
            mods += [nn.Dropout(dropout), nn.Linear(d, d), nn.GELU()]
        self.net = nn.Sequential(*mods)
        self.apply(_xavier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Fuse(nn.Module):
    """``CAT``: ``GELU(Linear(Dropout([id ; text])))``; ``ADD``: ``id + text``."""

    def __init__(self, d: int, kind: str, dropout: float) -> None:
        super().__init__()
        self.kind = kind
        if kind == "cat":
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * d, d), nn.GELU())
            self.apply(_xavier)

    def forward(self, ids: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([ids, text], -1)) if self.kind == "cat" else ids + text


class Tower(nn.Module):
    """One SASRec sequence encoder over item representations given from outside.

    Wraps a :class:`SASRec` (its item table is the ID table of the ID and aligned experts) and runs
    its position embedding, LayerNorm, dropout and blocks on any ``(B, L, d)`` input, with the
    same left-padding attention mask as :meth:`SASRec._embed`.
    """

    def __init__(self, schema: Schema, config: PADConfig) -> None:
        super().__init__()
        self.sasrec = SASRec(schema, config.sasrec())

    @property
    def item_embedding(self) -> nn.Embedding:
        return self.sasrec.item_embedding

    def forward(self, x: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        s = self.sasrec
        L = seq.shape[1]
        if L > s.config.max_len:
            raise ConfigError(f"input length {L} exceeds the model's max_len {s.config.max_len}")
        h = s.dropout(s.norm(x + s.position_embedding.weight[:L]))
        mask = None
        if bool((seq[:, 0] == 0).any()):
            causal = torch.ones(L, L, dtype=torch.bool, device=seq.device).tril()
            keys = (seq != 0)[:, None, None, :] | torch.eye(L, dtype=torch.bool, device=seq.device)
            mask = causal & keys
        for block in s.blocks:
            h = block(h, mask)
        return h


class _PADBase(nn.Module):
    task: ClassVar[str] = "pad"
    registry_name: ClassVar[str]
    Config = PADConfig
    text: torch.Tensor  # buffer, when given

    def __init__(self, schema: Schema, config: PADConfig, text: torch.Tensor | None = None) -> None:
        super().__init__()
        seq = schema.of(FieldKind.SEQUENCE)
        if len(seq) != 1:
            raise ConfigError(f"PAD needs exactly one SEQUENCE field in its schema; got {len(seq)}")
        self.schema, self.config = schema, config
        self.n_items = seq[0].vocab_size
        if text is not None:
            if text.ndim != 2 or text.shape[0] != self.n_items:
                raise ConfigError(f"item text matrix must be ({self.n_items}, D) with row 0 = padding; "
                                  f"got {tuple(text.shape)}")
            self.register_buffer("text", text.float(), persistent=False)
        self.seen: torch.Tensor | None = None  # sorted user*(V)+item keys, for negative sampling

    def _towers(self) -> list[Tower]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reps(self, expert: int, ids: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def item_tables(self) -> list[torch.Tensor]:
        """Per expert, the (V, d) item representations it scores against (and reads its inputs from)."""
        ids = torch.arange(self.n_items, device=next(self.parameters()).device)
        return [self._reps(e, ids) for e in range(len(self._towers()))]

    @torch.no_grad()
    def cache_tables(self) -> None:
        """Serving: compute the item tables once (eval mode) and reuse them until :meth:`train` is
        called; the text vectors and MLPs then cost nothing per request."""
        self.eval()
        self._tables: list[torch.Tensor] | None = self.item_tables()

    def train(self, mode: bool = True) -> _PADBase:
        if mode:
            self._tables = None
        return super().train(mode)

    def expert_scores(self, batch: Batch) -> list[torch.Tensor]:
        """Per expert, (B, V) dot-product scores of the state at the last position."""
        seq = batch["item_seq"]
        cached = getattr(self, "_tables", None)
        tables = cached if cached is not None and not self.training else self.item_tables()
        out = []
        for e, tower in enumerate(self._towers()):
            table = tables[e]
            h = gather_last(tower(table[seq], seq), batch)
            out.append(h @ table.t())
        return out

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.expert_scores(batch)[0]

    def pair_scores(self, batch: Batch, neg: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], dict]:
        """Per expert, (B, L) scores of the target and of the negative at every position; computes
        item representations once per distinct id of the batch."""
        seq, tgt = batch["item_seq"], batch["target_seq"]
        ids, inv = torch.unique(torch.stack([seq, tgt, neg]), return_inverse=True)
        pos_s, neg_s, extra = [], [], {"ids": ids, "inv": inv}
        for e, tower in enumerate(self._towers()):
            r = self._reps(e, ids)
            x, t, n = r[inv[0]], r[inv[1]], r[inv[2]]
            h = tower(x, seq)
            pos_s.append((h * t).sum(-1))
            neg_s.append((h * n).sum(-1))
        return pos_s, neg_s, extra

    def loss(self, batch: Batch) -> torch.Tensor:
        neg = self._negatives(batch)
        pos_s, neg_s, _ = self.pair_scores(batch, neg)
        return self._bce(self.mix(pos_s, batch["target_seq"]), self.mix(neg_s, neg), batch["target_seq"] > 0)

    def mix(self, scores: list[torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        return scores[0]

    def _negatives(self, batch: Batch) -> torch.Tensor:
        if self.seen is None:
            raise ConfigError("PAD's training needs the users' seen items: call set_seen() first")
        return sample_negatives(batch["target_seq"], batch["user"], self.seen.to(batch["target_seq"].device),
                                self.n_items - 1)

    def set_seen(self, keys: torch.Tensor) -> None:
        self.seen = keys

    @staticmethod
    def _bce(pos: torch.Tensor, neg: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The release's loss: ``BCE(pos[m], 1) + BCE(neg[m], 0)`` (each a mean over positions)."""
        return (F.binary_cross_entropy_with_logits(pos[m], torch.ones_like(pos[m]))
                + F.binary_cross_entropy_with_logits(neg[m], torch.zeros_like(neg[m])))


class PADPhase1(_PADBase):
    """Phase 1: the ID tower (``Model2_id``), a SASRec trained with BCE + one negative per position."""

    registry_name = "pad-phase1"

    def __init__(self, schema: Schema, config: PADConfig | None = None, text: torch.Tensor | None = None) -> None:
        super().__init__(schema, config or PADConfig(), text)
        self.id_tower = Tower(schema, self.config)

    def _towers(self) -> list[Tower]:
        return [self.id_tower]

    def _reps(self, expert: int, ids: torch.Tensor) -> torch.Tensor:
        return self.id_tower.item_embedding(ids)


class _AlignedExpert(nn.Module):
    def __init__(self, schema: Schema, c: PADConfig, text_dim: int) -> None:
        super().__init__()
        self.tower = Tower(schema, c)  # its item table is the release's other_embedding
        self.text_proj = TextProjection(text_dim, c.hidden_size, c.text_layers, c.dropout)  # turn_dim1
        self.fuse = Fuse(c.hidden_size, c.fuse, c.dropout)

    def reps(self, ids: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fused item reps, T(text), ID embeddings) for ``ids``."""
        t = self.text_proj(text[ids])
        e = self.tower.item_embedding(ids)
        return self.fuse(e, t), t, e


class PADPhase2(_PADBase):
    """Phase 2: the alignment tower (``Model2_transfer``); start it with :meth:`copy_from`."""

    registry_name = "pad-phase2"

    def __init__(self, schema: Schema, config: PADConfig | None = None, text: torch.Tensor | None = None) -> None:
        super().__init__(schema, config or PADConfig(), text)
        if text is None:
            raise ConfigError("PAD phase 2 needs the item text matrix")
        self.aligned = _AlignedExpert(schema, self.config, text.shape[1])

    def copy_from(self, phase1: PADPhase1) -> None:
        """``freeze()``: the aligned tower starts as the phase-1 ID table and encoder."""
        self.aligned.tower.load_state_dict(copy.deepcopy(phase1.id_tower.state_dict()))

    def _towers(self) -> list[Tower]:
        return [self.aligned.tower]

    def _reps(self, expert: int, ids: torch.Tensor) -> torch.Tensor:
        return self.aligned.reps(ids, self.text)[0]

    def align_loss(self, batch: Batch, neg: torch.Tensor) -> torch.Tensor:
        """MK-MMD (or InfoNCE) between T(text) and the ID embeddings of the batch's item rows.

        As released, the rows are every position of each sequence's window (``max_len + 1`` items,
        left padding included) and of its negatives (plus one padding row), grouped
        ``mmd_group`` sequences at a time (the release's per-GPU batch); the estimates are averaged.
        """
        c = self.config
        window = torch.cat([batch["item_seq"], batch["target_seq"][:, -1:]], 1)
        negs = torch.cat([neg, torch.zeros_like(neg[:, :1])], 1)
        rows = torch.stack([window, negs], 2).reshape(len(window), -1)  # (B, 2 (L+1)), as sample_items_id
        ids, inv = torch.unique(rows, return_inverse=True)
        _, t_u, e_u = self.aligned.reps(ids, self.text)
        if c.align_loss == "mmd" and c.mmd_estimator != "linear" and c.mmd_impl == "fast":
            return self._distinct_row_mmd(rows, ids, t_u, e_u)
        t, e = t_u[inv], e_u[inv]  # (B, R, d)
        B, R, d = t.shape
        mmd = mk_mmd if c.mmd_impl == "fast" else mk_mmd_reference
        groups = [(g, min(g + c.mmd_group, B)) for g in range(0, B, c.mmd_group)]
        if c.mmd_pad_rows and c.align_loss == "mmd":  # the full groups as one batched estimate
            full = (B // c.mmd_group) * c.mmd_group
            losses = []
            if full:
                shape = (B // c.mmd_group, c.mmd_group * R, d)
                losses.append(mmd(t[:full].reshape(shape), e[:full].reshape(shape), c.mmd_alphas,
                                  c.mmd_estimator))  # type: ignore[arg-type]
            if full < B:
                losses.append(mmd(t[full:].reshape(-1, d), e[full:].reshape(-1, d), c.mmd_alphas,
                                  c.mmd_estimator).reshape(1))  # type: ignore[arg-type]
            return torch.cat(losses).mean()
        losses = []
        for lo, hi in groups:
            keep = rows[lo:hi].reshape(-1) > 0 if not c.mmd_pad_rows else slice(None)
            tg, eg = t[lo:hi].reshape(-1, d)[keep], e[lo:hi].reshape(-1, d)[keep]
            if c.align_loss == "infonce":
                losses.append(info_nce(tg, eg, c.infonce_temperature))
            else:
                losses.append(mmd(tg, eg, c.mmd_alphas, c.mmd_estimator))  # type: ignore[arg-type]
        return torch.stack(losses).mean()

    def _distinct_row_mmd(self, rows: torch.Tensor, ids: torch.Tensor, t_u: torch.Tensor,
                          e_u: torch.Tensor) -> torch.Tensor:
        """The quadratic MK-MMD per group on the group's distinct items, each weighted by how often
        it occurs (a repeated item is the same row: one dropout mask per item and batch), all groups
        (the last one possibly smaller) as one batched estimate; same value as over every row."""
        c = self.config
        B, R = rows.shape
        V = self.n_items
        group = torch.arange(B, device=rows.device).div(c.mmd_group, rounding_mode="floor")
        key, count = torch.unique((group[:, None] * V + rows).reshape(-1), return_counts=True)  # sorted
        g, item = key.div(V, rounding_mode="floor"), key % V
        if not c.mmd_pad_rows:
            count = torch.where(item > 0, count, torch.zeros_like(count))
        n_groups = int(group[-1]) + 1
        first = torch.searchsorted(g, torch.arange(n_groups, device=g.device))
        pos = torch.arange(len(key), device=key.device) - first[g]
        width = int(pos.max()) + 1
        index = torch.zeros(n_groups, width, dtype=torch.long, device=rows.device)
        weight = torch.zeros(n_groups, width, dtype=t_u.dtype, device=rows.device)
        index[g, pos] = torch.searchsorted(ids, item)
        weight[g, pos] = count.to(t_u.dtype)
        return mk_mmd(t_u[index], e_u[index], c.mmd_alphas, c.mmd_estimator, weights=weight).mean()

    def loss(self, batch: Batch) -> torch.Tensor:
        neg = self._negatives(batch)
        pos_s, neg_s, _ = self.pair_scores(batch, neg)
        rec = self._bce(pos_s[0], neg_s[0], batch["target_seq"] > 0)
        if self.config.align_loss == "none":
            return rec
        return rec + self.config.align_weight * self.align_loss(batch, neg)


class PADPhase3(_PADBase):
    """Phase 3: ID, aligned and text-only experts mixed by per-bin gates (``Model_new3_3``).

    ``bins`` (V,) maps item ids to popularity bins (0 = padding, 1 = most popular); start it with
    :meth:`copy_from` (phase-1 ID tower, phase-2 aligned tower).
    """

    registry_name = "pad"
    bins: torch.Tensor  # buffer

    def __init__(self, schema: Schema, config: PADConfig | None = None, text: torch.Tensor | None = None,
                 bins: torch.Tensor | None = None) -> None:
        super().__init__(schema, config or PADConfig(), text)
        if text is None:
            raise ConfigError("PAD phase 3 needs the item text matrix")
        c = self.config
        self.id_tower = Tower(schema, c)
        self.aligned = _AlignedExpert(schema, c, text.shape[1])
        self.text_tower = Tower(schema, c)  # user_enc_3 (its ID table is unused)
        self.text_proj = TextProjection(text.shape[1], c.hidden_size, c.text_layers, c.dropout)  # turn_dim3
        self.gate = nn.Parameter(gate_init(c.n_bins, c.gamma2, c.gate_init))  # alpha, alpha2, alpha3
        b = torch.zeros(self.n_items, dtype=torch.long) if bins is None else torch.as_tensor(bins, dtype=torch.long)
        if b.shape != (self.n_items,) or int(b.max()) > c.n_bins or int(b.min()) < 0:
            raise ConfigError(f"bins must be ({self.n_items},) ints in 0..{c.n_bins}; got shape {tuple(b.shape)}")
        self.register_buffer("bins", b)

    def copy_from(self, phase1: PADPhase1, phase2: PADPhase2) -> None:
        self.id_tower.load_state_dict(copy.deepcopy(phase1.id_tower.state_dict()))
        self.aligned.load_state_dict(copy.deepcopy(phase2.aligned.state_dict()))

    def _towers(self) -> list[Tower]:
        return [self.id_tower, self.aligned.tower, self.text_tower]

    def _reps(self, expert: int, ids: torch.Tensor) -> torch.Tensor:
        if expert == 0:
            return self.id_tower.item_embedding(ids)
        if expert == 1:
            return self.aligned.reps(ids, self.text)[0]
        return self.text_proj(self.text[ids])

    def weights(self, items: torch.Tensor) -> torch.Tensor:
        """(3, *items.shape) expert weights of each candidate item (sum to 1 over experts)."""
        s = torch.sigmoid(self.gate[:, self.bins[items]])
        return s / s.sum(0, keepdim=True)

    @torch.no_grad()
    def bin_weights(self) -> torch.Tensor:
        """(3, n_bins) expert weights per popularity bin 1..n_bins (rows ID / aligned / text)."""
        s = torch.sigmoid(self.gate[:, 1:])
        return s / s.sum(0, keepdim=True)

    def mix(self, scores: list[torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        w = self.weights(items)
        return sum(w[e] * scores[e] for e in range(3))  # type: ignore[return-value]

    def forward(self, batch: Batch) -> torch.Tensor:
        scores = self.expert_scores(batch)
        all_ids = torch.arange(self.n_items, device=scores[0].device)
        return self.mix(scores, all_ids)

    def param_groups(self, lr: float, weight_decay: float, gate_lr: float | None = None) -> list[dict]:
        """The release's AdamW groups: gates at AdamW's default weight decay (0.01), the rest
        ``weight_decay``; ``gate_lr`` gives the gates their own learning rate (default ``lr``, as released)."""
        rest = [p for n, p in self.named_parameters() if n != "gate"]
        return [{"params": [self.gate], "lr": lr if gate_lr is None else gate_lr, "weight_decay": 0.01},
                {"params": rest, "lr": lr, "weight_decay": weight_decay}]
