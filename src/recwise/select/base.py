"""The field-selector contract: one scikit-learn style API for every feature-selection method.

A selector scores every feature field of a Table and ranks them::

    sel = get_selector("gbdt", {"n_estimators": 50}, seed=0).fit(train, valid)
    sel.fields_    # candidate fields: the feature fields of train.schema (sparse, then dense)
    sel.scores_    # (F,) one score per field, aligned with fields_, higher = more important
    sel.ranking_   # fields_ by score, descending; ties keep schema order
    sel.top_k(5)   # the first 5 of ranking_

Writing a selector: subclass :class:`FieldSelector`, give it a frozen ``Config`` dataclass (its
options, defaults as released), a ``family`` and ``_score(train, valid) -> np.ndarray`` returning
one finite score per field of ``self.fields_``; decorate with ``@register_selector("name")``.
``fit`` validates the tables, sets ``fields_``, calls ``_score`` and then :func:`set_ranking`.
A selector that must control ``fit`` itself may override it and call :func:`set_ranking` at
the end. Selectors that need a trained deep model build it with :meth:`FieldSelector.build_backbone`
and train it with :func:`fit_backbone` (the one Trainer, early stopping on validation AUC).
Every selector is deterministic for a given ``seed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn

from recwise.config import config_from_dict, replace
from recwise.data.schema import Schema
from recwise.data.table import Batch, Table
from recwise.errors import ConfigError, DataError
from recwise.metrics import auc
from recwise.registry import Registry
from recwise.train import TrainConfig, Trainer, TrainResult, predict, seed_everything

__all__ = [
    "ERASE_TRAIN",
    "FAMILIES",
    "SELECTORS",
    "FieldSelector",
    "bce_loss",
    "candidate_fields",
    "fit_backbone",
    "get_selector",
    "list_selectors",
    "rank_fields",
    "register_selector",
    "set_ranking",
    "validation_auc",
]

FAMILIES = ("shallow", "filter", "permutation", "gate", "sensitivity", "llm")

# ERASE's training defaults (fs_run.py + README): Adam 1e-3 without weight decay, batch 4096,
# 100 epochs with early stopping after 3 epochs without a better validation AUC. One change:
# BatchNorm statistics are recomputed over up to 64 training batches before each validation
# (PreciseBN; ``train.precise_bn=0`` is the released momentum average). ML-100K has 18 batches an
# epoch, too few for the momentum average to forget its initial variance of 1 while FiBiNET's
# bilinear products have a variance near 1e-9: eval-mode FiBiNET then scored far below the
# trained model (docs/selection.md, "FiBiNET").
ERASE_TRAIN = TrainConfig(epochs=100, batch_size=4096, lr=1e-3, weight_decay=0.0, patience=3, seed=0, precise_bn=64)

def _check_selector(name: str, cls: Any) -> None:
    if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
        raise RuntimeError(f"selector {cls.__name__} has no Config dataclass")
    if getattr(cls, "family", None) not in FAMILIES:
        raise RuntimeError(f"selector {cls.__name__} has family {getattr(cls, 'family', None)!r}; "
                           f"expected one of {FAMILIES}")


# its loader, recwise.select, imports every selector module
SELECTORS: Registry[type[FieldSelector]] = Registry("selection method", loaders=["recwise.select"],
                                                     check=_check_selector)


def register_selector(name: str) -> Callable[[type], type]:
    """Register a FieldSelector subclass under ``name`` (it needs ``Config`` and ``family``)."""

    def deco(cls: type) -> type:
        SELECTORS.add(name, cls)
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return deco


def list_selectors() -> list[str]:
    return SELECTORS.names()


def get_selector(name: str, options: dict[str, Any] | None = None, **kw: Any) -> FieldSelector:
    """Build the selector ``name`` with ``options`` (checked against its Config) and ``kw``
    (backbone, backbone_options, train, seed, device). Unknown names are ConfigErrors."""
    cls = SELECTORS.get(name)
    return cls(config_from_dict(cls.Config, dict(options or {}), where="method"), **kw)


def candidate_fields(schema: Schema) -> list[str]:
    """The fields a selector ranks: sparse, then dense, each in schema order (as CTRModel.fields)."""
    return [f.name for f in schema.sparse] + [f.name for f in schema.dense]


def rank_fields(fields: list[str], scores: np.ndarray) -> list[str]:
    """``fields`` sorted by ``scores`` descending; ties (and NaN, ranked last) keep the given order."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(fields),):
        raise ValueError(f"got {s.shape} scores for {len(fields)} fields")
    key = np.where(np.isnan(s), -np.inf, s)
    order = sorted(range(len(fields)), key=lambda i: (-key[i], i))
    return [fields[i] for i in order]


def set_ranking(selector: FieldSelector, fields: list[str], scores: np.ndarray) -> None:
    """Set ``fields_``, ``scores_`` (float64 copy) and ``ranking_`` on a fitted selector."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1).copy()
    selector.fields_ = list(fields)
    selector.scores_ = s
    selector.ranking_ = rank_fields(list(fields), s)


def bce_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """BCE on logits plus the model's ``extra_loss()`` when it has one."""
    loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"])
    extra = cast(Any, model).extra_loss() if hasattr(model, "extra_loss") else None
    return loss + extra if extra is not None else loss


def validation_auc(model: nn.Module, data: Batch, batch_size: int = 16384) -> float:
    """AUC of ``model``'s eval-mode logits on ``data`` (a tensor dict with ``label``)."""
    return auc(data["label"].numpy(), predict(model, data, batch_size))


def require_valid(name: str, valid: object) -> None:
    """Gate and sensitivity selectors read a validation split (as released); say so when it is missing."""
    if valid is None:
        raise ConfigError(f"selector '{name}' needs a validation table: call fit(train, valid)")


def fit_backbone(
    model: nn.Module,
    train: Table | Batch,
    valid: Table | Batch | None,
    config: TrainConfig,
    *,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] = bce_loss,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` with the project's Trainer: early stopping on validation AUC (best weights
    restored). Without ``valid`` it runs ``config.epochs`` epochs on training loss alone."""
    tr = train.tensors() if isinstance(train, Table) else train
    va = valid.tensors() if isinstance(valid, Table) else valid
    if va is None:
        config = replace(config, patience=config.epochs + 1)

        def monitor(m: nn.Module) -> float:
            return 0.0
    else:
        def monitor(m: nn.Module) -> float:
            return validation_auc(m, va, config.eval_batch_size)

    trainer = Trainer(model, config, loss_fn=loss_fn, monitor=monitor, mode="max", progress=progress)
    return trainer.fit(tr)


class FieldSelector:
    """Base class of every selector (scikit-learn style; see the module docstring).

    Parameters
    ----------
    config : the selector's Config instance or a dict of options (None: the released defaults)
    backbone : str, default "mlp"
        The ``ctr`` registry model that deep selectors train (ignored by shallow/filter methods).
    backbone_options : dict, optional
        Options of the backbone's Config.
    train : TrainConfig, optional
        How deep selectors train (default :data:`ERASE_TRAIN`); its seed is replaced by ``seed``.
    seed : int, default 0
    device : str, default "auto"
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type]
    family: ClassVar[str]
    granularity: ClassVar[str] = "field"
    uses_backbone: ClassVar[bool] = False  # False: the ranking does not depend on backbone/train

    fields_: list[str]
    scores_: np.ndarray
    ranking_: list[str]
    # set by a search whose scores do not separate the fields (why, in one sentence): the report
    # then names the ranking instead of scoring it (recwise.tasks.selection.report.near_noise)
    degenerate_: str = ""

    def __init__(
        self,
        config: Any = None,
        *,
        backbone: str = "mlp",
        backbone_options: dict[str, Any] | None = None,
        train: TrainConfig | None = None,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = config_from_dict(self.Config, config, where="method")
        elif not isinstance(config, self.Config):
            raise ConfigError(f"selector '{self.name}' expects a {self.Config.__name__} or a dict; "
                              f"got {type(config).__name__}")
        self.config = config
        self.backbone = backbone
        self.backbone_options = dict(backbone_options or {})
        base = train if train is not None else ERASE_TRAIN
        self.train_config = replace(base, seed=seed, device=device if train is None else base.device)
        self.seed = int(seed)
        self.device = device

    # ---------------------------------------------------------------- fitting

    def fit(self, train: Table, valid: Table | None = None) -> FieldSelector:
        """Score every feature field of ``train`` (``valid``: a held-out split when the method uses one)."""
        fields = self._check_tables(train, valid)
        self.fields_ = fields
        scores = np.asarray(self._score(train, valid), dtype=np.float64).reshape(-1)
        if scores.shape != (len(fields),):
            raise RuntimeError(f"selector '{self.name}' returned {scores.shape} scores for {len(fields)} fields")
        set_ranking(self, fields, scores)
        return self

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        raise NotImplementedError

    def _check_tables(self, train: Table, valid: Table | None) -> list[str]:
        if not isinstance(train, Table):
            raise DataError(f"selector '{self.name}': fit expects a recwise Table; got {type(train).__name__}")
        fields = candidate_fields(train.schema)
        if not fields:
            raise DataError(f"selector '{self.name}': the table has no sparse or dense feature field")
        train.schema.label  # noqa: B018 - raises DataError without exactly one label
        if len(train) == 0:
            raise DataError(f"selector '{self.name}': the training table is empty")
        if valid is not None:
            if candidate_fields(valid.schema) != fields:
                raise DataError(f"selector '{self.name}': valid table fields {candidate_fields(valid.schema)} "
                                f"differ from train fields {fields}")
            if len(valid) == 0:
                raise DataError(f"selector '{self.name}': the validation table is empty")
        return fields

    # ---------------------------------------------------------------- after fit

    def top_k(self, k: int) -> list[str]:
        """The ``k`` best fields; ``k`` outside 1..F is a ConfigError."""
        if not hasattr(self, "ranking_"):
            raise ConfigError(f"selector '{self.name}' is not fitted; call fit(train, valid) first")
        n = len(self.ranking_)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
            raise ConfigError(f"k={k!r} is out of range: the table has F={n} fields (k must be 1..{n})")
        return list(self.ranking_[: int(k)])

    # ---------------------------------------------------------------- deep helpers

    def build_backbone(self, schema: Schema) -> nn.Module:
        """A fresh ``ctr`` backbone for ``schema``, seeded with ``self.seed``."""
        from recwise.registry import get_model

        cls = get_model("ctr", self.backbone)
        seed_everything(self.seed)
        return cls(schema, config_from_dict(cls.Config, self.backbone_options, where="backbone"))

    def trained_backbone(self, train: Table, valid: Table | None) -> nn.Module:
        """Train a fresh backbone on ``train`` with early stopping on ``valid`` (which must be given).

        Sets ``model_`` and ``train_result_`` and returns the trained model (best weights).
        """
        require_valid(self.name, valid)
        model = self.build_backbone(train.schema)
        self.train_result_ = fit_backbone(model, train, valid, self.train_config)
        self.model_ = model
        return model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r}, seed={self.seed})"
