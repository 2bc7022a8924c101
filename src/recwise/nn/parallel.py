"""Several same-shaped MLPs evaluated as one: the experts, gates and towers of mixture models.

``ParallelMLP(n, ...)`` holds ``n`` independent MLPs with the layout of :class:`recwise.nn.MLP`
(Linear -> BatchNorm1d -> act -> Dropout per layer, optional Linear -> 1) and runs them with a
handful of batched kernels instead of ``n`` times as many small ones. The result is the same as
``n`` separate MLPs: BatchNorm normalises each channel on its own, so one BatchNorm over the
``n * width`` concatenated channels equals ``n`` BatchNorms over ``width`` channels each, and each
weight block is initialised like ``nn.Linear`` (uniform in +-1/sqrt(fan_in)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from recwise.nn.mlp import activation

__all__ = ["ParallelMLP"]


class ParallelMLP(nn.Module):
    """``n`` independent MLPs run together.

    Parameters
    ----------
    n : int
        Number of MLPs.
    input_dim : int
    dims : sequence of int
        Hidden widths of each MLP.
    shared_input : bool, default True
        True: every MLP reads the same (B, input_dim) input. False: MLP ``i`` reads ``x[:, i]``
        of a (B, n, input_dim) input.
    output_layer : bool, default True
        Append ``Linear(dims[-1], 1)`` to each MLP.
    act : str, default "relu"
        Activation; "softmax" is applied within each MLP's own channels.
    dropout : float, default 0.0
    batch_norm : bool, default True

    Returns (B, n, width) where width is 1 with ``output_layer`` else ``dims[-1]``.
    """

    def __init__(self, n: int, input_dim: int, dims: Sequence[int] = (), *, shared_input: bool = True,
                 output_layer: bool = True, act: str = "relu", dropout: float = 0.0, batch_norm: bool = True) -> None:
        super().__init__()
        self.n = n
        self.shared_input = shared_input
        self.act_name = act.lower()
        widths = [input_dim, *dims] + ([1] if output_layer else [])
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.norms = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
            bound = 1.0 / math.sqrt(d_in)
            self.weights.append(nn.Parameter(torch.empty(n, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, d_out).uniform_(-bound, bound)))
            hidden = i < len(dims)
            self.norms.append(nn.BatchNorm1d(n * d_out) if hidden and batch_norm else nn.Identity())
        self.n_hidden = len(dims)
        self.act = activation(act) if self.act_name != "softmax" else None
        self.dropout = nn.Dropout(dropout)
        self.output_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.n
        batch = x.shape[0]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            d_out = w.shape[2]
            if i == 0 and self.shared_input:
                # one (B, d_in) @ (d_in, n * d_out) product for all MLPs
                h = torch.addmm(b.permute(1, 0, 2).reshape(1, -1), x, w.permute(1, 0, 2).reshape(w.shape[1], -1))
            else:
                if i == 0:
                    x = x.transpose(0, 1)  # (n, B, d_in)
                h = torch.baddbmm(b, x, w)  # (n, B, d_out)
                h = h.transpose(0, 1).reshape(batch, n * d_out)
            if i < self.n_hidden:
                h = self.norms[i](h)  # (B, n * d_out): one channel set per MLP
                if self.act is None:
                    h = torch.softmax(h.view(batch, n, d_out), dim=2).view(batch, n * d_out)
                else:
                    h = self.act(h)
                h = self.dropout(h)
            x = h.view(batch, n, d_out).transpose(0, 1)  # (n, B, d_out) for the next layer
        return x.transpose(0, 1)  # (B, n, width)
