"""Shared machinery of the gate-based selectors: a gate between ``embed()`` and ``head()``.

ERASE's released code plugs every deep selection module between the embedding layer and the
backbone (``BaseModel.forward``: embedding -> fs -> bb). Here the same place is between
:meth:`CTRModel.embed` and :meth:`CTRModel.head`::

    model = GatedModel(backbone, gate)
    logits = backbone.head(gate(backbone.embed(batch), batch))

A :class:`Gate` tells the search loop which of its parameters the selector's own Adam trains
(``fs_parameters``, ERASE's ``optimizer_fs``) and which go with the backbone (the rest, ERASE's
``optimizer_bb``). Released schedules count forwards and batch indices (AutoField's tau, LPFS's
epsilon, OptFS's temperature), so the loop sets ``gate.step`` (the batch index in the current
pass, also during evaluation passes, as released) and ``gate.epoch`` before each forward.

:func:`search_fit` is ERASE's ``modeltrainer.train_one_epoch`` + ``fit`` on recwise's data
layer: BCE on logits (ERASE's sigmoid + BCELoss, computed stably), the backbone Adam stepped
every batch, the selector Adam stepped as the method says (``"joint"``: every batch, OptFS;
``"darts"``: every ``update_frequency`` batches on one batch of a validation pass shuffled anew
each epoch, AutoField;
``"proximal"``: every batch then ``gate.proximal(lr)``, LPFS), validation AUC after every epoch,
early stopping with ``patience`` and the best weights restored (also when the epoch budget runs
out first; the released early stopper kept the last weights then, as recwise's Trainer notes).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from recwise.data.table import Batch, BatchLoader
from recwise.metrics import auc, logloss
from recwise.train import TrainConfig
from recwise.train.trainer import resolve_device

__all__ = ["Gate", "GatedModel", "SearchResult", "evaluate_gated", "gated_logits", "search_fit"]


class Gate(nn.Module):
    """A module ``(emb (B, F, E), batch) -> emb'`` placed between ``embed`` and ``head``.

    Attributes set by the search loop before each forward: ``step`` (batch index within the
    current pass) and ``epoch`` (None outside training, as ERASE's ``current_epoch``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.step = 0
        self.epoch: int | None = None

    def forward(self, emb: torch.Tensor, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def fs_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the selector's own optimizer (default: none; all go with the backbone)."""
        return []

    def extra_loss(self) -> torch.Tensor | None:
        return None

    def proximal(self, lr: float) -> None:
        """Called after the selector optimizer's step in ``"proximal"`` mode."""


class GatedModel(nn.Module):
    """A CTR backbone with a gate between its ``embed`` and ``head``."""

    def __init__(self, backbone: nn.Module, gate: Gate) -> None:
        super().__init__()
        self.backbone = backbone
        self.gate = gate

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.backbone.head(self.gate(self.backbone.embed(batch), batch))

    def extra_loss(self) -> torch.Tensor | None:
        parts = [x for x in (self.backbone.extra_loss(), self.gate.extra_loss()) if x is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else torch.stack(parts).sum()


def _reshuffled(loader: BatchLoader, start: int) -> Iterator[Batch]:
    """Endless batches: a new shuffled pass each time one ends (the released ``iter(val_dataloader)``)."""
    k = start
    while True:
        loader.set_epoch(k)
        yield from loader
        k += 1


@torch.no_grad()
def gated_logits(model: GatedModel, data: Batch, batch_size: int, *, epoch: int | None) -> np.ndarray:
    """Eval-mode logits in row order; ``gate.step`` counts the batches as ERASE's evaluate does."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out = []
    for i, b in enumerate(BatchLoader(data, batch_size, device=device)):
        model.gate.step, model.gate.epoch = i, epoch
        out.append(model(b).float().cpu())
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def evaluate_gated(model: GatedModel, data: Batch, batch_size: int, *, epoch: int | None = None) -> dict[str, float]:
    """AUC and logloss of a gated model (gate in its current mode) on ``data``."""
    logit = gated_logits(model, data, batch_size, epoch=epoch).astype(np.float64)
    prob = 1.0 / (1.0 + np.exp(-logit))
    label = data["label"].numpy()
    return {"auc": auc(label, prob), "logloss": logloss(label, prob)}


@dataclass
class SearchResult:
    best_epoch: int
    best_auc: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)


def search_fit(
    model: GatedModel,
    train: Batch,
    valid: Batch,
    config: TrainConfig,
    *,
    fs_mode: Literal["none", "joint", "darts", "proximal"] = "none",
    update_frequency: int = 10,
    progress: bool = False,
) -> SearchResult:
    """Train backbone + gate as ERASE's ``modeltrainer`` does (see the module docstring)."""
    device = resolve_device(config.device)
    model.to(device)
    gate = model.gate
    fs_params = gate.fs_parameters() if fs_mode != "none" else []
    fs_ids = {id(p) for p in fs_params}
    bb_params = [p for p in model.parameters() if id(p) not in fs_ids]
    opt_bb = torch.optim.Adam(bb_params, lr=config.lr, weight_decay=config.weight_decay)
    # ERASE's optimizer_fs: plain Adam, same learning rate, no weight decay
    opt_fs = torch.optim.Adam(fs_params, lr=config.lr) if fs_params else None
    loader = BatchLoader(train, config.batch_size, shuffle=True, seed=config.seed, device=device)
    # ERASE's validation loader shuffles, and each epoch starts a fresh pass over it for the DARTS batches
    val_loader = BatchLoader(valid, config.batch_size, shuffle=True, seed=config.seed + 1, device=device)
    bce = nn.functional.binary_cross_entropy_with_logits

    best_state = copy.deepcopy(model.state_dict())
    best_auc, best_epoch, bad = -float("inf"), -1, 0
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.epochs), desc="search", disable=not progress, leave=False)
    for epoch in bar:
        loader.set_epoch(epoch)
        model.train()
        loss_sum = 0.0
        # a fresh shuffled pass each epoch (its own permutation stream per epoch)
        val_batches = _reshuffled(val_loader, 10_007 * epoch) if fs_mode == "darts" else None
        for i, batch in enumerate(loader):
            gate.step, gate.epoch = i, epoch
            loss = bce(model(batch), batch["label"])
            extra = model.extra_loss()
            if extra is not None:
                loss = loss + extra
            model.zero_grad(set_to_none=True)
            loss.backward()
            opt_bb.step()
            loss_sum += float(loss.detach())
            if opt_fs is None:
                continue
            if fs_mode == "joint":
                opt_fs.step()
            elif fs_mode == "darts":
                if i % update_frequency == 0:
                    assert val_batches is not None
                    opt_fs.zero_grad(set_to_none=True)
                    vb = next(val_batches)
                    gate.step, gate.epoch = i, epoch
                    bce(model(vb), vb["label"]).backward()
                    opt_fs.step()
            elif fs_mode == "proximal":
                opt_fs.step()
                with torch.no_grad():
                    gate.proximal(config.lr)
        score = evaluate_gated(model, valid, config.eval_batch_size, epoch=epoch)["auc"]
        if score > best_auc or best_epoch < 0:
            best_auc, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        history.append({"epoch": epoch, "loss": loss_sum / max(len(loader), 1), "val_auc": score})
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", val=f"{score:.4f}")
        if bad >= config.patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    return SearchResult(best_epoch, best_auc, len(history), history)
