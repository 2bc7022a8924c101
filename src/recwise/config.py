"""Frozen config dataclasses: building them from dicts and ``key=value`` overrides.

Unknown keys are errors that name the closest valid key; values are coerced to the
declared type (``int``, ``float``, ``bool``, ``str``, tuples of those, ``Literal``
choices) and rejected with a message naming the option when they do not fit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

from recwise.errors import ConfigError

__all__ = ["config_from_dict", "config_hash", "config_to_dict", "parse_overrides", "replace"]

C = TypeVar("C")


def _suggest(key: str, valid: list[str]) -> str:
    from recwise.registry import did_you_mean

    return did_you_mean(key, valid).replace("; known:", "; valid options:")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        members = [a for a in get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, members[0], where)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"option '{where}' must be one of {list(choices)}; got {value!r}")
        return value
    if origin is tuple:
        args = get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.strip("()[] ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"option '{where}' must be a list; got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, inner, where) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"option '{where}' must be true or false; got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"option '{where}' must be an int; got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"option '{where}' must be an int; got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"option '{where}' must be an int; got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"option '{where}' must be a number; got {value!r}") from None
    if tp is str:
        return str(value)
    return value


def config_from_dict(cls: type[C], values: dict[str, Any], *, where: str = "") -> C:
    """Build the frozen dataclass ``cls`` from ``values``, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    prefix = f"{where}." if where else ""
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown option '{prefix}{key}' for {cls.__name__}" + _suggest(key, names))
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def replace(cfg: C, **changes: Any) -> C:
    """``dataclasses.replace`` with the same key checking as :func:`config_from_dict`."""
    merged = {**config_to_dict(cfg), **changes}
    return config_from_dict(type(cfg), merged)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def config_hash(*cfgs: Any) -> str:
    """A short stable hash of one or more configs (dataclasses or dicts)."""
    blob = json.dumps(
        [config_to_dict(c) if dataclasses.is_dataclass(c) else c for c in cfgs], sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """Parse ``["key=value", ...]`` into a dict; a malformed item is a ConfigError."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value; got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out
