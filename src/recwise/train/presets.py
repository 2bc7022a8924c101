"""Training presets shared by protocols."""

from __future__ import annotations

from typing import Any

__all__ = ["sequential_train_defaults"]


def sequential_train_defaults(examples: str) -> dict[str, Any]:
    """SIGMA's training options; a ``sequence``/``cloze`` batch counts windows (about 40 targets each)."""
    return {"epochs": 200, "batch_size": 2048 if examples == "prefix" else 32, "eval_batch_size": 4096,
            "lr": 1e-3, "weight_decay": 0.0, "patience": 10}
