"""The MLP block shared by the multi-scenario models: (Linear -> BatchNorm1d -> act -> Dropout) x L."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["MLP", "activation"]


def activation(name: str) -> nn.Module:
    """An activation module by name (relu, sigmoid, tanh, prelu, dice-free set)."""
    table: dict[str, Callable[[], nn.Module]] = {
        "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "prelu": nn.PReLU, "gelu": nn.GELU,
        "leakyrelu": nn.LeakyReLU, "identity": nn.Identity, "softmax": lambda: nn.Softmax(dim=1),
    }
    if name.lower() not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(table)}")
    return table[name.lower()]()


class MLP(nn.Module):
    """Stacked ``Linear -> BatchNorm1d -> activation -> Dropout`` layers, then optionally ``Linear -> 1``.

    Parameters
    ----------
    input_dim : int
    dims : sequence of int
        Hidden widths. Empty with ``output_layer`` gives a single Linear to 1.
    dropout : float, default 0.0
    act : str, default "relu"
    output_layer : bool, default True
        Append a final ``Linear(dims[-1], 1)`` (the logit).
    batch_norm : bool, default True

    (B, input_dim) -> (B, 1) with ``output_layer`` else (B, dims[-1]).
    """

    def __init__(self, input_dim: int, dims: Sequence[int] = (), *, dropout: float = 0.0, act: str = "relu",
                 output_layer: bool = True, batch_norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for d in dims:
            layers.append(nn.Linear(width, d))
            if batch_norm:
                layers.append(nn.BatchNorm1d(d))
            layers.append(activation(act))
            layers.append(nn.Dropout(dropout))
            width = d
        if output_layer:
            layers.append(nn.Linear(width, 1))
            width = 1
        self.net = nn.Sequential(*layers)
        self.output_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
