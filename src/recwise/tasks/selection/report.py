"""Tables and the figure of a feature-selection bench: AUKC per method x backbone, AUC per k, the
top-half check (:func:`summary`), and test AUC vs k as self-contained HTML (:func:`plot_html`).

A search whose scores do not separate the fields gives a ranking that is its tie-break or its
seed, not a finding: :func:`near_noise` names those (every score equal, or rankings of different
seeds that agree no more than random orders do) and :func:`summary` leaves them out of the AUKC
table and the top-half check instead of scoring them.

Rows are the protocol's (:func:`recwise.tasks.selection.protocol.cell_rows`): ``model`` is
``<backbone>+<method>``, segments ``k=<k>`` and ``aukc``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from recwise.results import ResultRow

__all__ = ["curves", "near_noise", "plot_html", "summary", "top_half_check"]


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    return 0.0 if tau is None or np.isnan(tau) else float(tau)


def near_noise(rankings: Iterable[Mapping[str, Any]], backbones: Sequence[str] = ()) -> dict[str, str]:
    """``"backbone+method"`` -> why its ranking is near noise, for the searches that are.

    ``rankings`` are the cells' ``ranking.json`` contents (method, backbone or None, seed, fields,
    scores). A (method, backbone) group is near noise when

    - **degenerate**: the selector said so (``degenerate`` in the ranking; OptFS when every field
      keeps the same share of its values, so its order is its tie-break), or
    - **tied**: in some seed every field has the same score (to 1e-9 of the largest), or
    - **seed noise** (2 or more seeds): the mean pairwise Kendall tau of the
      seeds' score vectors is under two standard deviations of tau between two independent random
      orders of F fields, ``2 * sqrt(2 (2F + 5) / (9 F (F - 1)))`` (0.50 for F = 10).

    A method without a backbone (shallow, filter) applies to every name in ``backbones``.
    """
    groups: dict[tuple[str, str | None], list[dict[str, float]]] = {}
    members: dict[tuple[str, str | None], list[Mapping[str, Any]]] = {}
    for r in rankings:
        members.setdefault((r["method"], r.get("backbone")), []).append(r)
        groups.setdefault((r["method"], r.get("backbone")), []).append(dict(zip(r["fields"], r["scores"], strict=True)))
    out: dict[str, str] = {}
    for (method, backbone), seeds in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        reason = next((f"degenerate: {r['degenerate']}" for r in members[(method, backbone)]
                       if r.get("degenerate")), "")
        for sc in seeds if not reason else ():
            v = np.asarray(list(sc.values()), dtype=np.float64)
            if v.size > 1 and np.ptp(v) <= 1e-9 * max(np.abs(v).max(), 1e-300):
                reason = f"tied: all {v.size} fields have score {v[0]:.4g}, so the ranking is the tie-break order"
                break
        if not reason and len(seeds) > 1:
            fields = sorted(seeds[0])
            f = len(fields)
            taus = [_kendall_tau([a[x] for x in fields], [b[x] for x in fields])
                    for a, b in itertools.combinations(seeds, 2)]
            bound = 2 * math.sqrt(2 * (2 * f + 5) / (9 * f * (f - 1))) if f > 1 else 1.0
            if float(np.mean(taus)) < bound:
                reason = (f"seed noise: its {len(seeds)} seeds' rankings agree with mean Kendall tau "
                          f"{np.mean(taus):.2f}, under {bound:.2f} (2 sd of random orders of {f} fields)")
        if reason:
            for b in ([backbone] if backbone is not None else backbones):
                out[f"{b}+{method}"] = reason
    return out


def curves(rows: Sequence[ResultRow], split: str = "test", metric: str = "auc") -> dict[str, dict[int, list[float]]]:
    """model ("backbone+method") -> k -> values over seeds."""
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r.split == split and r.metric == metric and r.segment.startswith("k="):
            out.setdefault(r.model, {}).setdefault(int(r.segment[2:]), []).append(r.value)
    return out


def summary(rows: Sequence[ResultRow], ks: Sequence[int], dataset: str, failed: Sequence[str] = (),
            noise: Mapping[str, str] | None = None) -> str:
    """Markdown: test AUKC per method x backbone, test AUC per k, and the top-half check.

    ``noise`` (:func:`near_noise`): those models show "near noise" in the AUKC table, with the
    reason below it, and take no part in the top-half check; their AUC per k is still listed."""
    noise = dict(noise or {})
    aukcs: dict[str, list[float]] = {}
    for r in rows:
        if r.split == "test" and r.segment == "aukc":
            aukcs.setdefault(r.model, []).append(r.value)
    models = sorted(aukcs)
    backbones = sorted({m.split("+", 1)[0] for m in models})
    methods = sorted({m.split("+", 1)[1] for m in models})
    lines = [f"# feature selection on {dataset}: test AUKC (k = {', '.join(map(str, ks))}), mean ± std over seeds",
             "", "| method | " + " | ".join(backbones) + " |", "|---|" + "---|" * len(backbones)]
    for meth in methods:
        cells = []
        for b in backbones:
            m, s = _mean_std(aukcs.get(f"{b}+{meth}", []))
            if f"{b}+{meth}" in noise and not np.isnan(m):
                cells.append("near noise")
            else:
                cells.append(f"{m:.4f} ± {s:.4f}" if not np.isnan(m) else "-")
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    shown = sorted(m for m in noise if m in aukcs)
    if shown:
        lines += ["", "Near-noise searches (left out of the AUKC table and the top-half check):", ""]
        lines += [f"- {m}: {noise[m]}" for m in shown]
    cur = curves(rows)
    lines += ["", "## test AUC per k (mean over seeds)", "",
              "| backbone+method | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for model in sorted(cur):
        lines.append(f"| {model} | " + " | ".join(f"{_mean_std(cur[model].get(k, []))[0]:.4f}" for k in ks) + " |")
    check = top_half_check(rows, ks, exclude=noise)
    if check:
        lines += ["", "## top-half check", ""] + [f"- {c}" for c in check]
    if failed:
        lines += ["", "## failed", ""] + [f"- {f}" for f in failed]
    return "\n".join(lines) + "\n"


def top_half_check(rows: Sequence[ResultRow], ks: Sequence[int], exclude: Iterable[str] = ()) -> list[str]:
    """Per backbone: the best method by mean test AUKC, and its AUC at k = F/2 over its AUC at k = F
    (F = the largest k of the grid; needs F/2 rounded up in the grid). Models in ``exclude`` are
    not candidates."""
    skip = set(exclude)
    f = max(ks)
    half = (f + 1) // 2
    if half not in ks or half == f:
        return []
    aukcs: dict[str, list[float]] = {}
    for r in rows:
        if r.split == "test" and r.segment == "aukc" and r.model not in skip:
            aukcs.setdefault(r.model, []).append(r.value)
    cur = curves(rows)
    out = []
    for b in sorted({m.split("+", 1)[0] for m in aukcs}):
        cands = {m: _mean_std(v)[0] for m, v in aukcs.items() if m.startswith(b + "+")}
        best = max(cands, key=lambda m: cands[m])
        a_half, a_all = _mean_std(cur[best][half])[0], _mean_std(cur[best][f])[0]
        out.append(f"{b}: best method by AUKC {best.split('+', 1)[1]} ({cands[best]:.4f}); its top-{half} test AUC "
                   f"{a_half:.4f} = {100 * a_half / a_all:.2f}% of all-{f}-fields AUC {a_all:.4f}")
    return out


def plot_html(rows: Sequence[ResultRow], dataset: str) -> str:
    """Self-contained HTML (plotly inlined): test AUC vs k, one panel per backbone, one line per method."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cur = curves(rows)
    backbones = sorted({m.split("+", 1)[0] for m in cur})
    fig = make_subplots(rows=1, cols=max(len(backbones), 1), subplot_titles=backbones, shared_yaxes=True)
    methods = sorted({m.split("+", 1)[1] for m in cur})
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]
    for col, b in enumerate(backbones, start=1):
        for i, meth in enumerate(methods):
            per_k = cur.get(f"{b}+{meth}")
            if not per_k:
                continue
            kk = sorted(per_k)
            stats = [_mean_std(per_k[k]) for k in kk]
            fig.add_trace(go.Scatter(
                x=kk, y=[s[0] for s in stats], error_y={"type": "data", "array": [s[1] for s in stats]},
                mode="lines+markers", name=meth, legendgroup=meth, showlegend=col == 1,
                line={"color": palette[i % len(palette)]}), row=1, col=col)
        fig.update_xaxes(title_text="k (fields kept)", row=1, col=col)
    fig.update_yaxes(title_text="test AUC", row=1, col=1)
    fig.update_layout(title=f"Feature selection on {dataset}: test AUC vs k (mean ± std over seeds)",
                      template="plotly_white", height=450, width=max(500, 380 * len(backbones)))
    return fig.to_html(include_plotlyjs=True, full_html=True)
