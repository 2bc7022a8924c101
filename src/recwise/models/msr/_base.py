"""The contract every multi-scenario model follows.

``Model(schema, config)`` with ``config`` an instance of the model's frozen ``Config`` dataclass;
``forward(batch) -> logits (B,)``. The batch holds ``sparse`` (B, F) int64, ``dense`` (B, D)
float32 (when the schema has dense fields) and ``scenario`` (B,) int64. A model may add a
regulariser through ``extra_loss()``. Models do no I/O and no device moves.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from recwise.config import config_from_dict
from recwise.data.schema import Schema
from recwise.errors import ConfigError

__all__ = ["MSRModel", "pick_scenario"]


class MSRModel(nn.Module):
    """Base class: stores schema and config and checks the config type."""

    Config: ClassVar[type[Any]]  # Any: isinstance(config, Config) then keeps config's fields visible
    registry_name: ClassVar[str]

    def __init__(self, schema: Schema, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.Config):
            raise ConfigError(
                f"{type(self).__name__} expects a {self.Config.__name__}; got {type(config).__name__} "
                f"(build it with {type(self).__name__}.Config(...) or from_options)"
            )
        if not schema.sparse:
            raise ConfigError(f"{type(self).__name__} needs at least one sparse field in the schema")
        self.schema = schema
        self.config = config
        self.n_scenarios = schema.num_scenarios

    @classmethod
    def from_options(cls, schema: Schema, options: dict[str, Any] | None = None) -> MSRModel:
        """Build from a plain dict of options; unknown keys are ConfigErrors naming the closest one."""
        return cls(schema, config_from_dict(cls.Config, options or {}, where="model"))

    def extra_loss(self) -> torch.Tensor | None:
        """A regulariser added to the task loss after each forward (None: nothing)."""
        return None


def pick_scenario(per_scenario: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
    """(B, S) outputs of every scenario's head -> (B,) the head of each row's own scenario."""
    return per_scenario.gather(1, scenario.unsqueeze(1)).squeeze(1)
