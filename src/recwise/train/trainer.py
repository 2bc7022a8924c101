"""The one training loop.

Adam with weight decay, early stopping on a validation score chosen by the task, best weights
always restored (also when the epoch budget runs out first, unlike the original), a checkpoint
per epoch, and ``resume`` that ends with the same numbers as an uninterrupted run: every epoch's
batch order comes from ``(seed, epoch)``, and the optimizer, RNG and early-stopping state are
saved with the weights.

The training rows are either a tensor dict already in memory (``Batch``) or a ``TableStream``
that reads each batch from the (memory-mapped) columns. Under ``torchrun`` (after
``init_distributed``) the model is wrapped in DistributedDataParallel: every process trains on
its share of each batch, the validation score is computed once (rank 0) and sent to all, and
only rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from recwise.config import config_hash
from recwise.data.table import Batch, BatchLoader, StreamLoader, TableStream
from recwise.errors import CheckpointError, ConfigError
from recwise.train.checkpoint import load_training_state, save_training_state

__all__ = ["TrainConfig", "TrainResult", "Trainer", "dist_info", "init_distributed", "observe_epochs", "predict",
           "recompute_batchnorm", "resolve_device", "seed_everything"]

# called after every epoch of every Trainer.fit in this context with (step, validation score);
# ``recwise tune`` reports the curve to Optuna's pruner through it (see observe_epochs)
_EPOCH_OBSERVER: contextvars.ContextVar[Callable[[int, float], None] | None] = contextvars.ContextVar(
    "recwise_epoch_observer", default=None)


@contextlib.contextmanager
def observe_epochs(fn: Callable[[int, float], None]) -> Iterator[None]:
    """Call ``fn(step, score)`` after each epoch of every fit inside the block (rank 0 only).

    ``step`` counts the epochs this block has seen, across fits (a task that trains twice in a
    cell reports one curve). ``fn`` may raise to stop the training (Optuna's ``TrialPruned``);
    the exception leaves ``fit`` after that epoch's checkpoint is written.
    """
    steps = [0]

    def observe(_epoch: int, score: float) -> None:
        fn(steps[0], score)
        steps[0] += 1

    token = _EPOCH_OBSERVER.set(observe)
    try:
        yield
    finally:
        _EPOCH_OBSERVER.reset(token)


@dataclass(frozen=True)
class TrainConfig:
    """Training options; defaults are Scenario-Wise Rec's scripts except ``epochs`` (theirs is 1)."""

    epochs: int = 50
    batch_size: int = 4096
    eval_batch_size: int = 16384
    lr: float = 1e-3
    weight_decay: float = 1e-5
    patience: int = 4  # epochs without a strict improvement before stopping
    seed: int = 2022
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # CPU: flush subnormal floats to zero while fitting (x86 FTZ/DAZ, this thread and threads it
    # starts). Weight decay drives many weights into the subnormal range, where each multiply is
    # ~100x slower: STAR on ML-100K fits in 31.8 s instead of 90.5 s, same test AUC to 4 digits.
    flush_denormal: bool = True
    # PreciseBN (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): before each validation,
    # replace every BatchNorm's running statistics by their plain average over this many training
    # batches (the epoch's first ones, train mode, no gradients). 0 = off: PyTorch's momentum-0.1
    # average, as every released code runs. With few steps per epoch that average still remembers
    # its initial variance of 1 long after the layer's inputs have shrunk or grown, and eval-mode
    # predictions are then far from the trained model's (FiBiNET on ML-100K: docs/selection.md).
    precise_bn: int = 0

    def __post_init__(self) -> None:
        if self.precise_bn < 0:
            raise ConfigError(f"option 'train.precise_bn' must be >= 0 (0 = off); got {self.precise_bn}")
        for name in ("epochs", "batch_size", "eval_batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option 'train.{name}' must be >= 1; got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"option 'train.lr' must be > 0; got {self.lr}")


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def train_seconds(self) -> float:
        return float(sum(h["train_seconds"] for h in self.history))

    @property
    def train_samples(self) -> int:
        return int(sum(h["train_samples"] for h in self.history))


def recompute_batchnorm(model: nn.Module, batches: Any, n_batches: int) -> bool:
    """Set every BatchNorm's running mean and variance to their average over the first
    ``n_batches`` of ``batches`` (train mode, no gradients); returns False when the model has none.

    Each layer sees the inputs that the layers before it produce with their batch statistics,
    as in training; dropout stays on, as in training. The model is left in train mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the plain mean over the batches seen
    model.train()
    with torch.no_grad():
        for i, batch in enumerate(batches):
            if i >= n_batches:
                break
            model(batch)
    for m, mom in zip(norms, momenta, strict=True):
        m.momentum = mom
    return True


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"option 'train.device' is {name!r} but CUDA is not available; use cpu or auto")
    return torch.device(name)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised torch.distributed group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str = "auto") -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1): NCCL on CUDA, gloo on CPU.

    Returns True when this call created the group (the caller then destroys it); False when
    there is nothing to join or a group already exists.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        return False
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def _loader(data: Batch | TableStream, batch_size: int, **kw: Any) -> BatchLoader | StreamLoader:
    return data.loader(batch_size, **kw) if isinstance(data, TableStream) else BatchLoader(data, batch_size, **kw)


class _DDP(DistributedDataParallel):
    """DistributedDataParallel that lets a loss function reach the model's own methods (``extra_loss``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


@torch.no_grad()
def predict(
    model: nn.Module, data: Batch | TableStream, batch_size: int = 16384, device: torch.device | None = None
) -> np.ndarray:
    """Model outputs (logits) for every row, in row order, in eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = _loader(data, batch_size, shuffle=False)
    out = [model({k: v.to(device) for k, v in b.items()}).float().cpu() for b in loader]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


class Trainer:
    """Fit ``model`` on a tensor dict with ``loss_fn``, selecting on ``monitor``.

    Parameters
    ----------
    model : nn.Module
    config : TrainConfig
    loss_fn : callable (model, batch) -> scalar tensor
    monitor : callable (model) -> float
        The validation score, computed after every epoch.
    mode : "max" or "min", default "max"
        Whether a larger monitor value is better.
    run_dir : Path, optional
        Where the per-epoch checkpoint lives (``run_dir/checkpoint``); no checkpoints when None.
    progress : bool, default True

    ``fit`` takes the training rows as a ``Batch`` (in memory) or a ``TableStream`` (read per
    batch). Inside an initialised torch.distributed group (see ``init_distributed``) each
    process trains on its share of every batch of the same epoch order, through
    DistributedDataParallel.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        loss_fn: Callable[[nn.Module, Batch], torch.Tensor],
        monitor: Callable[[nn.Module], float],
        mode: Literal["max", "min"] = "max",
        run_dir: Path | None = None,
        progress: bool = True,
        extra_state: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.rank, self.world_size = dist_info()
        self.device = resolve_device(config.device)
        if self.world_size > 1 and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.run_dir = run_dir
        self.progress = progress
        self.fingerprint = config_hash(config, extra_state or {})
        # fused: one kernel for all parameters (about 3x faster steps on CPU than the per-tensor loop)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                          fused=True)

    @property
    def checkpoint_dir(self) -> Path | None:
        return self.run_dir / "checkpoint" if self.run_dir is not None else None

    def _score(self) -> float:
        """The monitor's value: computed on rank 0 and sent to every process, so all stop together."""
        if self.world_size == 1:
            return float(self.monitor(self.model))
        t = torch.zeros(1, dtype=torch.float64, device=self.device)
        if self.rank == 0:
            t[0] = float(self.monitor(self.model))
        dist.broadcast(t, 0)
        return float(t[0])

    def fit(self, train: Batch | TableStream, *, resume: bool = False) -> TrainResult:
        """Train until ``epochs`` or early stopping; the best weights are restored at the end."""
        flushed = self.config.flush_denormal and self.device.type == "cpu" and torch.set_flush_denormal(True)
        try:
            return self._fit(train, resume)
        finally:
            if flushed:
                torch.set_flush_denormal(False)

    def _fit(self, train: Batch | TableStream, resume: bool) -> TrainResult:
        c = self.config
        loader = _loader(train, c.batch_size, shuffle=True, seed=c.seed, device=self.device, rank=self.rank,
                         world_size=self.world_size)
        best_state = copy.deepcopy(self.model.state_dict())
        best_score, best_epoch, bad, start = -float("inf"), -1, 0, 0
        history: list[dict[str, float]] = []
        ckpt = self.checkpoint_dir
        if resume:
            if ckpt is None or not (ckpt.exists() or ckpt.with_name(ckpt.name + ".old").exists()):
                raise CheckpointError(f"--resume given but no checkpoint in {self.run_dir}; run without --resume")
            state, best_state = load_training_state(ckpt, model=self.model, optimizer=self.optimizer)
            if state["fingerprint"] != self.fingerprint:
                raise CheckpointError(
                    f"checkpoint in {ckpt} was made with other options; use the same options or run without --resume"
                )
            best_score, best_epoch = state["best_score"], state["best_epoch"]
            bad, history = state["bad"], state["history"]
            start = state["epoch"] + 1
            if state.get("finished"):
                start = c.epochs
        net: nn.Module = self.model
        if self.world_size > 1:  # after a resume, so every process starts from the same weights
            net = _DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                       find_unused_parameters=True)
        bar = tqdm(range(start, c.epochs), desc="epochs", disable=not self.progress or self.rank != 0, leave=False,
                   initial=start, total=c.epochs)
        stopped = bool(history) and bad >= c.patience
        for epoch in bar:
            if bad >= c.patience:
                stopped = True
                break
            loader.set_epoch(epoch)
            self.model.train()
            t0 = time.perf_counter()
            # float64 on the device: no sync per step, and the epoch loss does not drift with the
            # number of batches (a float32 running sum rounds every addition to 24 bits)
            loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
            for batch in loader:
                loss = self.loss_fn(net, batch)
                self.optimizer.zero_grad(set_to_none=True)
                if self.world_size > 1 and len(batch["label"]) * self.world_size != loader.global_rows:
                    # uneven shares (last batch): weight each so DDP's gradient average is the batch mean
                    (loss * (len(batch["label"]) * self.world_size / loader.global_rows)).backward()
                else:
                    loss.backward()
                self.optimizer.step()
                loss_sum += loss.detach().to(torch.float64)
            train_seconds = time.perf_counter() - t0
            if self.world_size > 1:
                dist.all_reduce(loss_sum)
                loss_sum /= self.world_size
            if c.precise_bn:
                loader.set_epoch(epoch)
                recompute_batchnorm(net, loader, c.precise_bn)
            score = self._score()
            improved = self.sign * score > self.sign * best_score if best_epoch >= 0 else True
            if improved:
                best_score, best_epoch, bad = score, epoch, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                bad += 1
            history.append({"epoch": epoch, "loss": float(loss_sum) / max(len(loader), 1), "val": score,
                            "train_seconds": train_seconds, "train_samples": loader.n})
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", val=f"{score:.4f}", best=f"{best_score:.4f}")
            if ckpt is not None and self.rank == 0:
                save_training_state(ckpt, model=self.model, best=best_state, optimizer=self.optimizer, state={
                    "epoch": epoch, "best_score": best_score, "best_epoch": best_epoch, "bad": bad,
                    "history": history, "fingerprint": self.fingerprint,
                    "finished": bad >= c.patience or epoch == c.epochs - 1,
                    "patience": c.patience, "max_epochs": c.epochs,  # read by `recwise progress`
                })
            observer = _EPOCH_OBSERVER.get()
            if observer is not None and self.rank == 0:
                observer(epoch, score)
        bar.close()
        if bad >= c.patience:
            stopped = True
        self.model.load_state_dict(best_state)  # best weights, always
        return TrainResult(best_epoch, best_score, len(history), stopped, history)

