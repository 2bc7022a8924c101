"""Setup shared by the model-specific multi-scenario tests (tests/models/msr/test_*.py).

Two tiny schemas with matching batch builders, a training loop, and eval helpers. Each helper
consumes the random generators in exactly the order the per-file copies it replaced did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from recwise.data.schema import Field, FieldKind, Schema

M = TypeVar("M", bound=nn.Module)
Batch = dict[str, torch.Tensor]

# Two sparse fields, one dense column, three scenarios.
SMALL_SCHEMA = Schema((
    Field("a", FieldKind.SPARSE, 10), Field("b", FieldKind.SPARSE, 7), Field("x", FieldKind.DENSE),
    Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))

# MovieLens-shaped: user_id and movie_id have the largest vocabularies (PPNet's auto-picked ids).
ML_SCHEMA = Schema((
    Field("user_id", FieldKind.SPARSE, 30), Field("movie_id", FieldKind.SPARSE, 40),
    Field("gender", FieldKind.SPARSE, 2), Field("zip", FieldKind.SPARSE, 9),
    Field("age", FieldKind.DENSE), Field("scenario", FieldKind.SCENARIO, 3), Field("label", FieldKind.LABEL),
))


def small_batch(n: int = 32, seed: int = 0) -> Batch:
    """An unlabelled SMALL_SCHEMA batch."""
    g = torch.Generator().manual_seed(seed)
    return {"sparse": torch.stack([torch.randint(0, 10, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1),
            "dense": torch.rand(n, 1, generator=g), "scenario": torch.randint(0, 3, (n,), generator=g)}


def id_parity_label(sparse: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
    """Planted: learnable from the user id's parity and the scenario."""
    return ((sparse[:, 0] % 2) ^ (scenario == 1).long()).float()


def ml_batch(
    n: int, seed: int = 0, label: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = id_parity_label
) -> Batch:
    """An ML_SCHEMA batch whose label is ``label(sparse, scenario)``."""
    g = torch.Generator().manual_seed(seed)
    sparse = torch.stack([torch.randint(0, f.vocab_size, (n,), generator=g) for f in ML_SCHEMA.sparse], dim=1)
    scenario = torch.randint(0, 3, (n,), generator=g)
    return {"sparse": sparse, "dense": torch.rand(n, 1, generator=g), "scenario": scenario,
            "label": label(sparse, scenario)}


def spread_model(cls: Callable[..., M], config: object, *, seed: int = 0, scenario_embedding: bool = True) -> M:
    """Seed, build on SMALL_SCHEMA, and spread the near-zero initial embeddings so norms have something to do."""
    torch.manual_seed(seed)
    m = cls(SMALL_SCHEMA, config)
    with torch.no_grad():
        m.embedding.table.weight.normal_()
        if scenario_embedding:
            m.scenario_embedding.weight.normal_()
    return m


def train_steps(model: nn.Module, batch: Batch, steps: int = 30) -> list[float]:
    """Full-batch Adam (lr 1e-2) on BCE; returns the loss at each step."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    model.train()
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def eval_three_ways(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eval-mode predictions (full, in pieces of 7, perm, on the batch shuffled by perm)."""
    n = len(batch["label"])
    model.eval()
    with torch.no_grad():
        full = model(batch)
        pieces = torch.cat([model({k: v[i:i + 7] for k, v in batch.items()}) for i in range(0, n, 7)])
        perm = torch.randperm(n)
        shuffled = model({k: v[perm] for k, v in batch.items()})
    return full, pieces, perm, shuffled


def perturbed_output(model: M, batch: Batch, perturb: Callable[[M], object]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode output before and after ``perturb(model)``."""
    model.eval()
    with torch.no_grad():
        before = model(batch)
        perturb(model)
        return before, model(batch)


def eval_in_two_contexts(model: nn.Module, n_shared: int, n_other: int) -> float:
    """Max |diff| of the predictions for n_shared rows, batched with two different n_other companions."""
    shared, other_a, other_b = small_batch(n_shared, 100), small_batch(n_other, 101), small_batch(n_other, 102)
    with torch.no_grad():
        a = model({k: torch.cat([shared[k], other_a[k]]) for k in shared})[:n_shared]
        b = model({k: torch.cat([shared[k], other_b[k]]) for k in shared})[:n_shared]
    return (a - b).abs().max().item()
