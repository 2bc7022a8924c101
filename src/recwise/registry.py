"""Explicit registries: a decorator maps a short name to a model class, per task."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from recwise.errors import ConfigError

__all__ = ["get_model", "list_models", "register"]

_MODELS: dict[str, dict[str, type]] = {}


def register(task: str, name: str) -> Callable[[type], type]:
    """Register a model class under ``name`` for ``task``; the class needs a ``Config`` attribute."""

    def deco(cls: type) -> type:
        table = _MODELS.setdefault(task, {})
        if name in table:
            raise RuntimeError(f"model name {name!r} registered twice for task {task!r}")
        if not hasattr(cls, "Config"):
            raise RuntimeError(f"model {cls.__name__} has no Config dataclass")
        cls.registry_name = name
        table[name] = cls
        return cls

    return deco


# task -> the package whose import registers that task's models
TASK_PACKAGES = {
    "msr": "recwise.models.msr",
    "sequential": "recwise.models.seq",
    "ctr": "recwise.models.ctr",
}


def _load(task: str) -> None:
    package = TASK_PACKAGES.get(task)
    if package is not None:
        importlib.import_module(package)  # registers on import


def list_models(task: str) -> list[str]:
    _load(task)
    return sorted(_MODELS.get(task, {}))


def get_model(task: str, name: str) -> Any:
    _load(task)
    table = _MODELS.get(task, {})
    if name not in table:
        close = difflib.get_close_matches(name.lower(), list(table), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"unknown model '{name}' for task '{task}'{hint} (`recwise models {task}` lists them)"
        )
    return table[name]
