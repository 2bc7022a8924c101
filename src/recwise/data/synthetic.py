"""Planted-truth CTR data for testing feature selectors.

:func:`planted_ctr` draws a table whose label depends on a known subset of fields only::

    logit = sum_i w_i[signal_i] (+ beta * dense signal) (+ pairwise interaction of two signals)
    label ~ Bernoulli(sigmoid(logit))

The other fields are either pure noise (independent of everything; some with many values, the
classic trap of impurity-based importance) or collinear copies of a signal field (the same id
through a fixed relabelling, with a fraction ``copy_noise`` of rows replaced at random). A copy
carries information about the label only through its source, so a selector may rank it high;
the truth is ``signal`` (causal), ``copies`` (redundant) and ``noise`` (useless).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recwise.data.cache import Prepared
from recwise.data.schema import Field, FieldKind, Schema
from recwise.data.split import random_split
from recwise.data.table import Table
from recwise.errors import ConfigError

__all__ = ["PlantedCTR", "planted_ctr"]


@dataclass
class PlantedCTR:
    """The generated data and its truth."""

    prepared: Prepared  # full table + random 70/20/10 split
    signal: list[str]  # fields the label depends on
    copies: dict[str, str] = field(default_factory=dict)  # copy field -> the signal field it copies
    noise: list[str] = field(default_factory=list)  # fields independent of the label

    @property
    def table(self) -> Table:
        return self.prepared.table

    def part(self, split: str) -> Table:
        return self.prepared.part(split)


def planted_ctr(
    n: int = 20000,
    *,
    n_signal: int = 3,
    n_noise: int = 4,
    n_copies: int = 1,
    vocab: int = 20,
    noise_vocab: tuple[int, ...] = (5, 50, 500),
    strength: float = 1.5,
    copy_noise: float = 0.2,
    dense_signal: bool = True,
    dense_noise: bool = True,
    interaction: bool = False,
    seed: int = 0,
    split_seed: int = 1,
) -> PlantedCTR:
    """Generate ``n`` rows. Sparse signal fields ``s0..``, copies ``c0..`` (of s0, s1, ...),
    sparse noise ``n0..`` (vocabularies cycle through ``noise_vocab``), a dense signal ``d0`` and
    a dense noise ``dn0``. Field order is shuffled with ``seed`` so position carries no hint.

    ``strength``: std of each signal field's per-value effect on the logit (the dense signal
    gets the same scale). ``interaction``: adds a pure pairwise effect of s0 x s1 (each value
    pair its own effect), which additive methods see only partly.
    """
    if n_signal < 1 or n_noise < 0 or n_copies < 0 or n_copies > n_signal:
        raise ConfigError(f"planted_ctr: need n_signal >= 1, n_noise >= 0, 0 <= n_copies <= n_signal; "
                          f"got {n_signal}, {n_noise}, {n_copies}")
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    fields: list[Field] = []
    logit = np.zeros(n)
    signal, noise, copies = [], [], {}
    for i in range(n_signal):
        name = f"s{i}"
        ids = rng.integers(0, vocab, n)
        effect = rng.normal(0.0, strength, vocab)
        logit += effect[ids]
        cols[name] = ids
        fields.append(Field(name, FieldKind.SPARSE, vocab, f"planted signal field {i}"))
        signal.append(name)
    if interaction and n_signal >= 2:
        pair = rng.normal(0.0, strength, (vocab, vocab))
        logit += pair[cols["s0"], cols["s1"]]
    for i in range(n_copies):
        src = f"s{i}"
        relabel = rng.permutation(vocab)
        ids = relabel[cols[src]]
        flip = rng.random(n) < copy_noise
        ids = np.where(flip, rng.integers(0, vocab, n), ids)
        name = f"c{i}"
        cols[name] = ids
        fields.append(Field(name, FieldKind.SPARSE, vocab, f"noisy copy of {src}"))
        copies[name] = src
    for i in range(n_noise):
        v = noise_vocab[i % len(noise_vocab)] if noise_vocab else vocab
        name = f"n{i}"
        cols[name] = rng.integers(0, v, n)
        fields.append(Field(name, FieldKind.SPARSE, v, "pure noise"))
        noise.append(name)
    if dense_signal:
        x = rng.random(n).astype(np.float32)
        logit += 2.0 * strength * (x - 0.5)
        cols["d0"] = x
        fields.append(Field("d0", FieldKind.DENSE, 0, "planted dense signal"))
        signal.append("d0")
    if dense_noise:
        cols["dn0"] = rng.random(n).astype(np.float32)
        fields.append(Field("dn0", FieldKind.DENSE, 0, "dense pure noise"))
        noise.append("dn0")
    order = rng.permutation(len(fields))
    fields = [fields[i] for i in order]
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-(logit - logit.mean())))).astype(np.float32)
    cols["label"] = label
    schema = Schema((*fields, Field("label", FieldKind.LABEL)))
    table = Table(schema, {f.name: cols[f.name] for f in schema.fields})
    splits = random_split(n, (0.7, 0.2, 0.1), split_seed)
    prepared = Prepared(table, splits, {"key": f"planted-{n}-{seed}", "dataset": "planted"})
    return PlantedCTR(prepared, signal, copies, noise)
