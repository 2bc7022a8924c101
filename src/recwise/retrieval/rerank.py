"""A cross-encoder reranker trained on groups (one positive, its negatives) through sentence-transformers.

The model is sentence-transformers' ``CrossEncoder`` (one relevance logit per (query, document)
pair), initialised from ``minilm`` (the offline all-MiniLM-L6-v2 weights; its classification head
starts untrained) or any local cross-encoder / Hugging Face folder given by path. Training runs
sentence-transformers' ``CrossEncoderTrainer`` with its ``MultipleNegativesRankingLoss`` restricted
to the group: logits of (query, positive) and (query, negative_j) go through a softmax over the
group and the loss is the cross-entropy of the positive, which is FlagEmbedding's reranker loss
with ``train_group_size`` = the group's size (RADIO: 7); no in-batch negatives, no activation, scale 1.

Examples
--------
>>> rr = CrossEncoderReranker(RerankerConfig(epochs=1))                              # doctest: +SKIP
>>> rr.fit([Group("capital of Peru?", "Lima is the capital of Peru.", ("Quito ...",) * 6)], seed=0)   # doctest: +SKIP
>>> rr.rerank(["capital of Peru?"], ranking, doc_texts, k=5)                           # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recwise.errors import CheckpointError, ConfigError, DataError, DependencyError
from recwise.results import usual_modes
from recwise.retrieval.runs import Ranking

__all__ = ["CrossEncoderReranker", "Group", "RerankerConfig", "group_loss"]


@dataclass(frozen=True)
class Group:
    """One training group: a query, its positive document and its negatives (texts)."""

    query: str
    positive: str
    negatives: tuple[str, ...]


@dataclass(frozen=True)
class RerankerConfig:
    """The cross-encoder and its training (RADIO's ``run_finetune.sh`` values where it sets one).

    Parameters
    ----------
    model : str, default "minilm"
        ``minilm`` (offline MiniLM weights, new head) or a local cross-encoder folder.
    epochs : int, default 2
    batch_size : int, default 16
        Groups per step (RADIO: 16 per device x 4 accumulation steps on GPUs).
    lr : float, default 6e-5
    weight_decay : float, default 0.01
    warmup_ratio : float, default 0.1
    max_length : int, default 256
        Tokens per (query, document) pair (RADIO: 512; geofacts documents are under 150).
    predict_batch_size : int, default 64
        Pairs per forward pass when scoring.
    """

    model: str = "minilm"
    epochs: int = 2
    batch_size: int = 16
    lr: float = 6e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 256
    predict_batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "predict_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"option 'rerank.{name}' must be an int >= 1; got {v!r}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"option 'rerank.lr' must be in (0, 1); got {self.lr}")
        if not 0 <= self.weight_decay < 1:
            raise ConfigError(f"option 'rerank.weight_decay' must be in [0, 1); got {self.weight_decay}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"option 'rerank.warmup_ratio' must be in [0, 1); got {self.warmup_ratio}")


def _model_folder(model: str) -> Path:
    if model == "minilm":
        from recwise.llm import LocalEncoderBackend

        return Path(LocalEncoderBackend("minilm", device="cpu").folder)
    path = Path(model).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path.resolve()
    raise ConfigError(f"option 'rerank.model' must be 'minilm' or a local cross-encoder folder with a config.json; "
                      f"got {model!r}")


def group_loss(model: Any) -> Any:
    """sentence-transformers' cross-encoder MultipleNegativesRankingLoss over each group only (softmax CE)."""
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss

    class GroupSoftmaxLoss(MultipleNegativesRankingLoss):
        """No in-batch negatives: the softmax runs over (positive, hard negatives) of one group."""

        def get_in_batch_negatives(self, anchors: list[str], candidates: list[list[str]]) -> Any:
            return iter(())

    return GroupSoftmaxLoss(model, num_negatives=None, scale=1, activation_fn=None)


def groups_dataset(groups: Sequence[Group]) -> Any:
    """A ``datasets.Dataset`` with columns query, positive, negative_1 .. negative_n (every group the same size)."""
    try:
        from datasets import Dataset  # type: ignore[import-untyped]
    except ImportError:
        raise DependencyError("reranker training needs datasets: pip install 'recwise[retrieval]'") from None
    if not groups:
        raise DataError("no training groups for the reranker (every training question was skipped)")
    sizes = {len(g.negatives) for g in groups}
    if len(sizes) != 1 or 0 in sizes:
        raise DataError(f"every training group needs the same number (>= 1) of negatives; got sizes {sorted(sizes)}")
    n = sizes.pop()
    cols: dict[str, list[str]] = {"query": [g.query for g in groups], "positive": [g.positive for g in groups]}
    for j in range(n):
        cols[f"negative_{j + 1}"] = [g.negatives[j] for g in groups]
    return Dataset.from_dict(cols)


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` that scores (query, document) pairs; see the module docstring.

    Parameters
    ----------
    config : RerankerConfig, optional
    folder : Path, optional
        Load this saved reranker (:meth:`save`) instead of ``config.model``.
    """

    def __init__(self, config: RerankerConfig | None = None, *, folder: Path | None = None) -> None:
        self.config = config or RerankerConfig()
        try:
            from sentence_transformers.cross_encoder import CrossEncoder
        except ImportError:
            raise DependencyError("the reranker needs sentence-transformers: pip install 'recwise[llm]'") from None
        source = Path(folder) if folder is not None else _model_folder(self.config.model)
        import warnings

        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialized head" is expected for minilm
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = CrossEncoder(str(source), num_labels=1, max_length=self.config.max_length, device="cpu",
                                          local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load a cross-encoder from {source}: {str(exc).splitlines()[0]}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
        self.fit_stats_: dict[str, float] = {}

    def fit(self, groups: Sequence[Group], *, seed: int, progress: bool = False) -> CrossEncoderReranker:
        """Train on ``groups`` (softmax cross-entropy over each group); ``fit_stats_`` holds the trainer's stats."""
        from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

        data = groups_dataset(groups)
        c = self.config
        with tempfile.TemporaryDirectory(prefix="recwise-ce-") as tmp:
            args = CrossEncoderTrainingArguments(
                output_dir=tmp, num_train_epochs=c.epochs, per_device_train_batch_size=c.batch_size,
                learning_rate=c.lr, weight_decay=c.weight_decay, warmup_steps=c.warmup_ratio, seed=seed,
                data_seed=seed, save_strategy="no", report_to="none", logging_strategy="no",
                disable_tqdm=not progress, use_cpu=os.environ.get("RECWISE_FT_GPU") != "1", dataloader_num_workers=0)
            trainer = CrossEncoderTrainer(model=self.model, args=args, train_dataset=data, loss=group_loss(self.model))
            out = trainer.train()
        self.fit_stats_ = {k: float(v) for k, v in out.metrics.items() if isinstance(v, (int, float))}
        self.fit_stats_["groups"] = float(len(groups))
        self.fit_stats_["pairs_per_second"] = (len(groups) * (1 + len(groups[0].negatives)) * c.epochs
                                               / max(self.fit_stats_.get("train_runtime", 0.0), 1e-9))
        return self

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One relevance logit per (query, document) pair, float32."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        out = self.model.predict([list(p) for p in pairs], batch_size=self.config.predict_batch_size,
                                 show_progress_bar=False, convert_to_numpy=True, activation_fn=None)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def rerank(self, queries: Sequence[str], candidates: Ranking, doc_texts: Sequence[str], k: int) -> Ranking:
        """Re-order each query's candidates by cross-encoder score and keep the top ``k`` (padding rows stay last)."""
        if len(queries) != candidates.rows.shape[0]:
            raise ValueError(f"{len(queries)} queries for {candidates.rows.shape[0]} candidate lists")
        pairs, where = [], []
        for i, (q, rows) in enumerate(zip(queries, candidates.rows.tolist())):
            for j, r in enumerate(rows):
                if r >= 0:
                    pairs.append((q, doc_texts[r]))
                    where.append((i, j))
        scores = np.full(candidates.rows.shape, -np.inf, dtype=np.float32)
        for (i, j), s in zip(where, self.score(pairs)):
            scores[i, j] = s
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return Ranking(np.take_along_axis(candidates.rows, order, axis=1),
                       np.take_along_axis(scores, order, axis=1))

    def save(self, folder: Path) -> None:
        """Write the model (safetensors + config JSON) into ``folder``, atomically."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            self.model.save_pretrained(str(tmp), safe_serialization=True)
            usual_modes(tmp)
            if folder.exists():
                shutil.rmtree(folder)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
