"""Fine-tune a bi-encoder with sentence-transformers' trainer and its contrastive losses.

Training data are (query, positive, negative) triples, or (query, positive) pairs when the
negatives are in-batch only. The loss is ``MultipleNegativesRankingLoss`` (InfoNCE over the
positive, the other positives of the batch and, when given, the hard negatives), or its cached
variant (GradCache: large batches in small memory) with ``loss="cached-mnrl"``. Batches are drawn
with sentence-transformers' no-duplicates sampler, so a query with several positives never meets
its own positives as in-batch negatives. Nothing here re-implements the loss or the loop.

Examples
--------
>>> model = local_sentence_transformer("minilm")                              # doctest: +SKIP
>>> finetune(model, [("q", "pos", "neg")], FinetuneConfig(epochs=1), seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recwise.errors import ConfigError, DependencyError

__all__ = ["FinetuneConfig", "Triple", "finetune", "training_dataset"]

Triple = tuple[str, str, str | None]
"""(query, positive, negative); negative None: in-batch negatives only."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning options (sentence-transformers' defaults where it has one).

    Parameters
    ----------
    epochs : int, default 1
    batch_size : int, default 32
        Triples per batch: each query sees ``batch_size - 1`` in-batch negatives besides its own.
    lr : float, default 2e-5
    warmup_ratio : float, default 0.1
    max_seq_length : int, default 256
        Tokens per text (MiniLM's limit is 256 word pieces).
    loss : {"mnrl", "cached-mnrl"}, default "mnrl"
    mini_batch_size : int, default 16
        cached-mnrl only: the GradCache chunk.
    scale : float, default 20.0
        The loss's inverse temperature (sentence-transformers' default).
    device : {"cpu", "auto"}, default "cpu"
        ``auto`` lets the trainer use a GPU when there is one.
    pairs_per_query : int, default 0
        Training triples per query and epoch: 0 (the default) trains on every (query, judged
        positive) pair; N > 0 draws N of a query's positives by the seed (all of them when it has
        fewer). A CPU budget, not the paper's setting: it shrinks the training set (Cranfield: about
        1,290 triples per fold at 0, 180 at 1). Used by the retrieval protocol when it builds triples.
    precision : {"fp32", "bf16"}, default "fp32"
        ``bf16`` trains under bfloat16 autocast (the trainer's ``bf16=True``; weights and optimizer
        state stay float32) and the retrieval protocol encodes the corpus with the tuned model under
        the same autocast. On CPUs with AMX (Sapphire Rapids and later) the matrix products run
        several times faster; elsewhere it may be slower. Not the paper's setting: a speed option.
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = 256
    loss: Literal["mnrl", "cached-mnrl"] = "mnrl"
    mini_batch_size: int = 16
    scale: float = 20.0
    device: Literal["cpu", "auto"] = "cpu"
    pairs_per_query: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        if isinstance(self.pairs_per_query, bool) or not isinstance(self.pairs_per_query, int) \
                or self.pairs_per_query < 0:
            raise ConfigError(f"option 'train.pairs_per_query' must be an int >= 0; got {self.pairs_per_query!r}")
        for name in ("epochs", "batch_size", "max_seq_length", "mini_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"option 'train.{name}' must be an int >= 1; got {v!r}")
        if self.batch_size < 2:
            raise ConfigError(f"option 'train.batch_size' must be >= 2 (in-batch negatives); got {self.batch_size}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"option 'train.lr' must be in (0, 1); got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"option 'train.warmup_ratio' must be in [0, 1); got {self.warmup_ratio}")
        if self.loss not in ("mnrl", "cached-mnrl"):
            raise ConfigError(f"option 'train.loss' must be 'mnrl' or 'cached-mnrl'; got {self.loss!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"option 'train.precision' must be 'fp32' or 'bf16'; got {self.precision!r}")


def training_dataset(triples: Sequence[Triple]) -> Any:
    """A ``datasets.Dataset`` with columns anchor, positive (and negative when every triple has one)."""
    try:
        from datasets import Dataset  # type: ignore[import-untyped]
    except ImportError:
        raise DependencyError("fine-tuning needs datasets: pip install 'recwise[retrieval]'") from None
    if not triples:
        raise ConfigError("no training triples: every training query lacks a judged positive")
    with_neg = [t[2] is not None for t in triples]
    if any(with_neg) and not all(with_neg):
        raise ConfigError("either every triple has a negative or none has (in-batch negatives only)")
    cols: dict[str, list[str]] = {"anchor": [t[0] for t in triples], "positive": [t[1] for t in triples]}
    if all(with_neg):
        cols["negative"] = [str(t[2]) for t in triples]
    return Dataset.from_dict(cols)


def finetune(model: Any, triples: Sequence[Triple], config: FinetuneConfig, *, seed: int,
             progress: bool = False) -> dict[str, float]:
    """Train ``model`` (a ``SentenceTransformer``, changed in place) on ``triples``; returns the trainer's stats.

    The stats hold ``train_runtime`` (s), ``train_samples_per_second`` and ``train_loss``.
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    model.max_seq_length = config.max_seq_length
    data = training_dataset(triples)
    loss: Any
    if config.loss == "mnrl":
        loss = MultipleNegativesRankingLoss(model, scale=config.scale)
    else:
        loss = CachedMultipleNegativesRankingLoss(model, scale=config.scale, mini_batch_size=config.mini_batch_size)
    with tempfile.TemporaryDirectory(prefix="recwise-st-") as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(Path(tmp)), num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
            learning_rate=config.lr, warmup_ratio=config.warmup_ratio, seed=seed, data_seed=seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to="none",
            logging_strategy="no", disable_tqdm=not progress, use_cpu=config.device == "cpu",
            dataloader_num_workers=0, bf16=config.precision == "bf16")
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss)
        out = trainer.train()
    return {k: float(v) for k, v in out.metrics.items() if isinstance(v, (int, float))}
