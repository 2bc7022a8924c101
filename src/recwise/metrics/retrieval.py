"""Retrieval metrics and paired significance tests, computed by ranx (no hand-written IR metrics).

Inputs are the dict form every IR library takes: ``qrels = {query id: {doc id: gain}}`` (gain >= 1
is relevant; see :mod:`recwise.data.retrieval` for the grade -> gain rule) and ``run = {query id:
{doc id: score}}``. nDCG is ranx's ``ndcg`` (Järvelin & Kekäläinen: linear gains, log2 discount),
MRR@10, Recall@100 and MAP are ranx's as well, so the numbers match ``trec_eval``'s definitions.

:func:`per_query` gives one value per query (what the paired tests and the k-fold means use);
:func:`compare_arms` runs a paired test per pair (baseline, arm) over the same queries (ranx's
paired t-test or Fisher randomisation test) and corrects the p-values for the number of arms with
Holm's step-down method.

Examples
--------
>>> qrels = {"q1": {"d1": 2}, "q2": {"d3": 1}}
>>> run = {"q1": {"d1": 1.0, "d9": 0.5}, "q2": {"d9": 1.0, "d3": 0.2}}
>>> per_query(qrels, run, ["mrr@10"])["mrr@10"].tolist()                      # doctest: +SKIP
[1.0, 0.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from recwise.errors import ConfigError, DataError, DependencyError

__all__ = ["DEFAULT_METRICS", "ArmComparison", "compare_arms", "holm", "paired_table", "per_query"]

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@100", "map")
Qrels = Mapping[str, Mapping[str, int]]
RunDict = Mapping[str, Mapping[str, float]]


def _ranx() -> Any:
    try:
        import ranx  # type: ignore[import-untyped]
    except ImportError:
        raise DependencyError("retrieval metrics need ranx: pip install 'recwise[retrieval]'") from None
    return ranx


def per_query(qrels: Qrels, run: RunDict, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, np.ndarray]:
    """One value per query of ``qrels`` (sorted by query id) for each metric.

    A query of ``qrels`` with no line in ``run`` scores 0; a query of ``run`` without judgments is
    an error (it would silently change the mean).
    """
    if not qrels:
        raise DataError("no judged queries to evaluate")
    extra = sorted(set(run) - set(qrels))
    if extra:
        raise DataError(f"run has {len(extra)} queries without judgments (first {extra[0]!r}); "
                        f"evaluate only judged queries")
    ranx = _ranx()
    import warnings

    qids = sorted(qrels)
    # ranx drops queries missing from the run; give them one impossible document so they count as 0
    full = {q: dict(run[q]) if run.get(q) else {"\x00none": 0.0} for q in qids}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's uint64 -> int64 cast note inside ranx
        q = ranx.Qrels({k: {d: int(g) for d, g in qrels[k].items()} for k in qids})
        r = ranx.Run(full)
        out = ranx.evaluate(q, r, list(metrics), return_mean=False, make_comparable=False)
    if len(metrics) == 1:
        out = {metrics[0]: out}
    return {m: np.asarray(out[m], dtype=np.float64) for m in metrics}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down correction of a family of p-values (same order as given)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class ArmComparison:
    """``arm`` vs ``baseline`` on ``metric`` over ``n`` paired queries: mean difference (arm - baseline), raw and
    Holm-corrected two-sided p-values."""

    baseline: str
    arm: str
    metric: str
    n: int
    mean_baseline: float
    mean_arm: float
    p_value: float
    p_holm: float


def compare_arms(values: Mapping[str, np.ndarray], baseline: str, metric: str, *,
                 test: Literal["student", "fisher"] = "student", n_permutations: int = 10000,
                 seed: int = 0) -> list[ArmComparison]:
    """Paired tests of every arm against ``baseline``; ``values``: arm -> per-query values (same queries, same order).

    ``student``: ranx's paired t-test; ``fisher``: ranx's randomisation test. p-values are
    Holm-corrected over the arms compared.
    """
    if baseline not in values:
        raise ConfigError(f"baseline {baseline!r} is not among the arms {sorted(values)}")
    if test not in ("student", "fisher"):
        raise ConfigError(f"option 'test' must be 'student' or 'fisher'; got {test!r}")
    from ranx.statistical_tests import (  # type: ignore[import-untyped]
        fisher_randomization_test,
        paired_student_t_test,
    )

    base = np.asarray(values[baseline], dtype=np.float64)
    arms = [a for a in values if a != baseline]
    raw = []
    for a in arms:
        other = np.asarray(values[a], dtype=np.float64)
        if other.shape != base.shape:
            raise DataError(f"arm {a!r} has {other.shape[0]} queries, baseline {baseline!r} {base.shape[0]}")
        if np.allclose(other, base):
            raw.append(1.0)
        elif test == "student":
            raw.append(float(paired_student_t_test(base, other, max_p=0.05)[0]))
        else:
            raw.append(float(fisher_randomization_test(base, other, n_permutations=n_permutations, max_p=0.05,
                                                       random_seed=seed)[0]))
    adjusted = holm(raw) if raw else []
    return [ArmComparison(baseline, a, metric, int(base.shape[0]), float(base.mean()),
                          float(np.mean(values[a])), p, ph) for a, p, ph in zip(arms, raw, adjusted)]


def paired_table(values: Mapping[str, Mapping[str, np.ndarray]], baseline: str, others: list[str],
                 metrics: list[str] | tuple[str, ...], caption: str) -> list[str]:
    """The lines of a markdown section: ``caption``, then one line per arm of ``others`` with, for each metric,
    its mean's difference from ``baseline`` and the Holm-corrected p of :func:`compare_arms` (paired over queries).

    ``values``: arm -> metric -> per-query values (the same queries, in the same order, for every arm).
    """
    comps = {m: {c.arm: c for c in compare_arms({a: values[a][m] for a in [baseline, *others]}, baseline, m)}
             for m in metrics}
    lines = ["", caption, "", "| arm | " + " | ".join(f"{m} Δ | p" for m in metrics) + " |",
             "|---|" + "---|---|" * len(metrics)]
    for a in others:
        cells = (f"{comps[m][a].mean_arm - comps[m][a].mean_baseline:+.4f} | {comps[m][a].p_holm:.3g}" for m in metrics)
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return lines
