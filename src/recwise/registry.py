"""One registry type for every named thing: models, datasets, selectors, methods and tasks.

A :class:`Registry` maps short names to objects. An entry is either the object itself (added by
the ``@registry.register(name)`` decorator when its module is imported) or a lazy
``"module:attribute"`` reference that is imported on first use, so listing names never imports
the heavy modules behind them. Unknown names raise one :class:`~recwise.errors.ConfigError`
with one did-you-mean suggestion (:func:`did_you_mean`), whatever the registry.

Models are registered per task (``register("msr", "star")``); :func:`get_model` and
:func:`list_models` look them up. Tasks themselves live in :data:`TASKS`, filled from the
sub-packages of :mod:`recwise.tasks` (each folder registers itself).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from recwise.errors import ConfigError

__all__ = ["MODELS", "Registry", "did_you_mean", "get_model", "list_models", "model_registry", "register"]

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str], *, list_all: bool = True) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, else ``"; known: a, b, c"`` (or ``""``)."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1) or difflib.get_close_matches(name.lower(), choices, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; known: {', '.join(choices)}" if list_all and choices else ""


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Named entries of one kind.

    Parameters
    ----------
    kind : what an entry is, for messages ("model for task 'msr'", "dataset").
    loaders : modules whose import registers entries (imported on the first lookup).
    hint : appended to the unknown-name message, e.g. "(`recwise models msr` lists them)".
    check : called with each object as it is registered (raise RuntimeError on a bad entry).
    """

    def __init__(self, kind: str, *, loaders: Iterable[str] = (), hint: str = "",
                 check: Callable[[str, Any], None] | None = None) -> None:
        self.kind = kind
        self.hint = hint
        self._loaders = list(loaders)
        self._loaded = False
        self._check = check
        self._entries: dict[str, Any] = {}  # name -> object, or "module:attr" string until resolved
        self._lazy: set[str] = set()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` (a second, different object under one name is an error)."""
        old = self._entries.get(name)
        if old is not None and old is not obj and name not in self._lazy:
            raise RuntimeError(f"{self.kind} name {name!r} registered twice")
        if self._check is not None:
            self._check(name, obj)
        self._entries[name] = obj
        self._lazy.discard(name)
        return obj

    def add_lazy(self, name: str, ref: str) -> None:
        """Register ``"module:attribute"``, imported when ``name`` is first looked up."""
        if name in self._entries and name not in self._lazy:
            raise RuntimeError(f"{self.kind} name {name!r} registered twice")
        self._entries[name] = ref
        self._lazy.add(name)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def deco(obj: T) -> T:
            return self.add(name, obj)

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._loaders:
            importlib.import_module(module)  # registers on import

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self):  # noqa: ANN204 - iterates names, sorted
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str) -> T:
        """The entry ``name``; an unknown name is a ConfigError with a did-you-mean."""
        self._load()
        if name not in self._entries:
            hint = f" {self.hint}" if self.hint else ""
            raise ConfigError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}{hint}")
        if name in self._lazy:
            obj = _resolve(self._entries[name])
            self._lazy.discard(name)
            if self._check is not None:
                self._check(name, obj)
            self._entries[name] = obj
        return self._entries[name]

    def items(self) -> list[tuple[str, T]]:
        return [(n, self.get(n)) for n in self.names()]


# ---------------------------------------------------------------------------------------------
# models, per task


def _check_model(name: str, cls: Any) -> None:
    if not hasattr(cls, "Config"):
        raise RuntimeError(f"model {getattr(cls, '__name__', cls)} has no Config dataclass")


# task -> the package whose import registers that task's models
MODEL_PACKAGES = {
    "msr": "recwise.models.msr",
    "sequential": "recwise.models.seq",
    "ctr": "recwise.models.ctr",
}
MODELS: dict[str, Registry[type]] = {}


def model_registry(task: str) -> Registry[type]:
    """The model registry of ``task`` (created on first use)."""
    if task not in MODELS:
        loaders = [MODEL_PACKAGES[task]] if task in MODEL_PACKAGES else []
        MODELS[task] = Registry(f"model for task '{task}'", loaders=loaders,
                                hint=f"(`recwise models {task}` lists them)", check=_check_model)
    return MODELS[task]


def register(task: str, name: str) -> Callable[[type], type]:
    """Register a model class under ``name`` for ``task``; the class needs a ``Config`` attribute."""

    def deco(cls: type) -> type:
        model_registry(task).add(name, cls)
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def list_models(task: str) -> list[str]:
    return model_registry(task).names()


def get_model(task: str, name: str) -> Any:
    return model_registry(task).get(name)
