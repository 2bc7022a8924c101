"""Paired significance tests between the models of one bench folder (``recwise compare``).

For every model against a baseline, on one metric and segment of the test split:

* a paired t-test over the seeds both have (:func:`recwise.metrics.paired_seed_test`): does the
  model beat the baseline by more than seed noise?
* a paired bootstrap over the test rows of the seed-averaged difference: is it larger than what
  resampling the test set gives? For AUC (:func:`recwise.metrics.paired_bootstrap_auc`) from each
  cell's ``test_predictions.npz``; for Hit@k, NDCG@k, MRR@k (:func:`recwise.metrics.paired_bootstrap_mean`
  over test users) from each sequential cell's ``test_ranks.npz``, overall or per history-length
  group (``--segment len=5-20``).

A model is called *better* (or *worse*) only when both tests give p < ``alpha`` with the same sign
as the mean difference; otherwise the two are *not separated* by this evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recwise.errors import ConfigError, DataError
from recwise.metrics.ranking import rank_gains
from recwise.metrics.significance import (
    BootstrapTest,
    PairedTest,
    paired_bootstrap_auc,
    paired_bootstrap_mean,
    paired_seed_test,
)
from recwise.registry import did_you_mean
from recwise.results import ResultRow, lower_is_better, read_results

__all__ = ["Comparison", "compare_grid", "comparison_markdown"]


@dataclass(frozen=True)
class Comparison:
    model: str
    baseline: str
    seeds: tuple[int, ...]
    mean: float  # the model's mean over the common seeds
    std: float
    baseline_mean: float
    seed_test: PairedTest
    bootstrap: BootstrapTest | None  # None: a metric without per-row outputs, or a cell's file missing

    def verdict(self, alpha: float = 0.05, *, lower_better: bool = False) -> str:
        diff = self.mean - self.baseline_mean
        if lower_better:
            diff = -diff
        ps = [self.seed_test.p_value] + ([self.bootstrap.p_value] if self.bootstrap is not None else [])
        if any(math.isnan(p) for p in ps) or diff == 0:
            return "not separated"
        if all(p < alpha for p in ps):
            return "better" if diff > 0 else "worse"
        return "not separated"


def _values(rows: list[ResultRow], metric: str, segment: str, split: str) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        if r.split == split and r.segment == segment and r.metric == metric and not math.isnan(r.value):
            out.setdefault(r.model, {})[r.seed] = r.value
    return out


def _per_seed(out: Path, model: str, seeds: tuple[int, ...], name: str,
              pick: Callable[[Any], tuple[np.ndarray, np.ndarray] | None]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(rows, values (seeds x rows))`` from the ``name`` file of each of ``model``'s cells: ``pick`` turns
    one file into the rows' identity (labels, users) and their values; None when a file is missing or
    ``pick`` has nothing for it. Every seed must hold the same rows."""
    rows: np.ndarray | None = None
    values = []
    for s in seeds:
        path = out / "cells" / model / f"seed{s}" / name
        if not path.exists():
            return None
        with np.load(path) as d:
            got = pick(d)
        if got is None:
            return None
        if rows is None:
            rows = got[0]
        elif not np.array_equal(rows, got[0]):
            raise DataError(f"{path}: its test rows differ from seed {seeds[0]}'s; the cells saw other test data")
        values.append(got[1])
    assert rows is not None
    return rows, np.stack(values)


def _predictions(out: Path, model: str, seeds: tuple[int, ...], segment: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels, probs (seeds x rows))`` of ``model`` from its cells' ``test_predictions.npz``."""

    def pick(d: Any) -> tuple[np.ndarray, np.ndarray] | None:
        y, p = d["label"], d["prob"]
        if segment.startswith("scenario="):
            keep = d["scenario"] == int(segment.split("=", 1)[1])
            return y[keep], p[keep]
        return (y, p) if segment == "all" else None

    return _per_seed(out, model, seeds, "test_predictions.npz", pick)


def _gains(out: Path, model: str, seeds: tuple[int, ...], metric: str,
           segment: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(users, values (seeds x users))``: each test user's ``metric`` from the model's ``test_ranks.npz``,
    in ``segment`` (``all`` or ``len=lo-hi``); None when a file is missing or the segment is another kind."""

    def pick(d: Any) -> tuple[np.ndarray, np.ndarray] | None:
        u, r, length = d["user"], d["rank"], d["item_len"]
        if segment.startswith("len="):
            lo, _, hi = segment[4:].partition("-")
            try:
                keep = (length >= float(lo)) & (length < float(hi))
            except ValueError:
                return None
            u, r = u[keep], r[keep]
        elif segment != "all":
            return None
        g = rank_gains(r, metric)
        return None if g is None else (u, g)

    return _per_seed(out, model, seeds, "test_ranks.npz", pick)


def compare_grid(out: Path, baseline: str, *, metric: str = "auc", segment: str = "all", split: str = "test",
                 n_resamples: int = 1000, seed: int = 0,
                 add: Sequence[tuple[str, Path]] = ()) -> list[Comparison]:
    """Every model of the bench folder ``out`` against ``baseline`` (see the module docstring).

    ``add``: ``(label, folder)`` pairs of other bench folders on the same data (another option of one
    model, say); their models join as ``label:model`` and may be the baseline.
    """
    values: dict[str, dict[int, float]] = {}
    where: dict[str, tuple[Path, str]] = {}  # model name here -> (its folder, its name there)
    datasets: dict[str, Path] = {}
    for label, folder in [("", out), *add]:
        path = folder / "results.csv"
        if not path.exists():
            raise DataError(f"{path} not found: `recwise compare` reads a `recwise bench` output folder")
        rows = read_results(path)
        for name in {r.dataset for r in rows}:
            datasets.setdefault(name, path)
        if len(datasets) > 1:
            raise DataError(f"{path}: the folders compared hold different datasets ({sorted(datasets)})")
        for model, v in _values(rows, metric, segment, split).items():
            name = f"{label}:{model}" if label else model
            if name in values:
                raise ConfigError(f"option --add: model name '{name}' is taken twice; give the folder another label")
            values[name], where[name] = v, (folder, model)
    if baseline not in values:
        raise ConfigError(f"option --baseline: no {split} {metric} of '{baseline}' (segment {segment}) in "
                          f"{out / 'results.csv'}{' or the added folders' if add else ''}"
                          f"{did_you_mean(baseline, values)}")
    base = values[baseline]
    result = []
    for model in sorted(values):
        if model == baseline:
            continue
        seeds = tuple(sorted(set(values[model]) & set(base)))
        if not seeds:
            continue
        a = [values[model][s] for s in seeds]
        b = [base[s] for s in seeds]
        boot = None
        if metric == "auc" and split == "test":
            pm, pb = _predictions(*where[model], seeds, segment), _predictions(*where[baseline], seeds, segment)
            if pm is not None and pb is not None:
                if not np.array_equal(pm[0], pb[0]):
                    raise DataError(f"{out}: '{model}' and '{baseline}' were tested on different rows")
                boot = paired_bootstrap_auc(pm[0], pm[1], pb[1], n_resamples=n_resamples, seed=seed)
        elif split == "test":  # None unless both have test_ranks.npz and the metric is Hit/NDCG/MRR@k
            gm = _gains(*where[model], seeds, metric, segment)
            gb = _gains(*where[baseline], seeds, metric, segment)
            if gm is not None and gb is not None:
                if not np.array_equal(gm[0], gb[0]):
                    raise DataError(f"{out}: '{model}' and '{baseline}' were tested on different users")
                boot = paired_bootstrap_mean(gm[1], gb[1], n_resamples=n_resamples, seed=seed)
        result.append(Comparison(model, baseline, seeds, float(np.mean(a)),
                                 float(np.std(a, ddof=1)) if len(a) > 1 else 0.0, float(np.mean(b)),
                                 paired_seed_test(a, b), boot))
    return result


def _p(p: float, resolution: float = 0.001) -> str:
    if math.isnan(p):
        return "-"
    return f"< {resolution:.3g}" if p < resolution else f"{p:.3f}"


def comparison_markdown(comps: list[Comparison], *, metric: str = "auc", segment: str = "all",
                        alpha: float = 0.05) -> str:
    """One row per model: mean ± std, difference to the baseline, both p-values and the verdict."""
    if not comps:
        return "no model shares a seed with the baseline\n"
    lower = lower_is_better(metric)
    base = comps[0].baseline
    if len({c.seeds for c in comps}) == 1:
        against = f"**{base}** ({comps[0].baseline_mean:.4f})"
    else:  # the baseline's mean differs from row to row
        against = f"**{base}** (each row over the seeds it shares with {base})"
    lines = [f"Test {metric} ({segment}) against {against}; verdict at alpha = {alpha}: both tests agree.", "",
             f"| model | seeds | {metric} mean ± std | Δ vs {base} | paired t p (seeds) | bootstrap Δ [95% CI] "
             f"| bootstrap p (test rows) | verdict |", "|---|---|---|---|---|---|---|---|"]
    order = sorted(comps, key=lambda c: c.mean, reverse=not lower)
    for c in order:
        b = c.bootstrap
        boot = "-" if b is None else f"{b.mean_diff:+.4f} [{b.ci_low:+.4f}, {b.ci_high:+.4f}]"
        boot_p = _p(b.p_value, 2 / b.n_resamples) if b is not None else "-"
        lines.append(f"| {c.model} | {len(c.seeds)} | {c.mean:.4f} ± {c.std:.4f} | {c.mean - c.baseline_mean:+.4f} | "
                     f"{_p(c.seed_test.p_value)} | {boot} | {boot_p} | "
                     f"{c.verdict(alpha, lower_better=lower)} |")
    return "\n".join(lines) + "\n"
