"""Search spaces for tuning: the ranges a hyperparameter may take, declared beside its config.

A space maps an option name to a :class:`Float`, :class:`Int` or :class:`Choice`. The training
options every model of a benchmark shares are :data:`TRAIN_SPACE`; a model declares its own
(``dropout``, its widths) as ``SEARCH_SPACE`` next to its ``Config`` and sets it as the class's
``search_space``. ``recwise tune`` (:mod:`recwise.bench.tune`) turns the ranges into Optuna
distributions; nothing here imports Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass

from recwise.errors import ConfigError

__all__ = ["TRAIN_SPACE", "Choice", "Float", "Int", "Param", "Space", "in_space"]


@dataclass(frozen=True)
class Float:
    """A real in ``[low, high]``; ``log``: sampled uniformly in log space (then ``low`` must be > 0)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ConfigError(f"Float range needs low < high; got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ConfigError(f"a log-scale Float range needs low > 0; got {self.low}")

    def contains(self, value: object) -> bool:
        return isinstance(value, (int, float)) and self.low <= float(value) <= self.high


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (both included)."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ConfigError(f"Int range needs low < high; got [{self.low}, {self.high}]")
        if self.log and self.low < 1:
            raise ConfigError(f"a log-scale Int range needs low >= 1; got {self.low}")

    def contains(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """One of a few values (ints, floats, strings; a width tuple is written ``"128,64"``)."""

    values: tuple[int | float | str | bool, ...]

    def __post_init__(self) -> None:
        if len(self.values) < 2 or len(set(self.values)) != len(self.values):
            raise ConfigError(f"Choice needs two or more distinct values; got {self.values}")

    def contains(self, value: object) -> bool:
        return value in self.values


Param = Float | Int | Choice
Space = dict[str, Param]

# what every model of a benchmark is tuned on; scopes as in `--set` (train.lr=...)
TRAIN_SPACE: Space = {
    "train.lr": Float(1e-4, 3e-2, log=True),
    "train.weight_decay": Float(1e-7, 1e-3, log=True),
    "train.batch_size": Choice((512, 1024, 2048, 4096)),
}


def in_space(space: Space, params: dict[str, object]) -> list[str]:
    """The names of ``params`` that are not in ``space`` or lie outside their range (empty: all fit)."""
    return [k for k, v in params.items() if k not in space or not space[k].contains(v)]
