"""Tables and the figure of a feature-selection bench: AUKC per method x backbone, AUC per k, the
top-half check (:func:`summary`), and test AUC vs k as self-contained HTML (:func:`plot_html`).

Rows are the protocol's (:func:`recwise.tasks.selection.protocol.cell_rows`): ``model`` is
``<backbone>+<method>``, segments ``k=<k>`` and ``aukc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recwise.results import ResultRow

__all__ = ["curves", "plot_html", "summary", "top_half_check"]


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def curves(rows: Sequence[ResultRow], split: str = "test", metric: str = "auc") -> dict[str, dict[int, list[float]]]:
    """model ("backbone+method") -> k -> values over seeds."""
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r.split == split and r.metric == metric and r.segment.startswith("k="):
            out.setdefault(r.model, {}).setdefault(int(r.segment[2:]), []).append(r.value)
    return out


def summary(rows: Sequence[ResultRow], ks: Sequence[int], dataset: str, failed: Sequence[str] = ()) -> str:
    """Markdown: test AUKC per method x backbone, test AUC per k, and the top-half check."""
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
            cells.append(f"{m:.4f} ± {s:.4f}" if not np.isnan(m) else "-")
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    cur = curves(rows)
    lines += ["", "## test AUC per k (mean over seeds)", "",
              "| backbone+method | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for model in sorted(cur):
        lines.append(f"| {model} | " + " | ".join(f"{_mean_std(cur[model].get(k, []))[0]:.4f}" for k in ks) + " |")
    check = top_half_check(rows, ks)
    if check:
        lines += ["", "## top-half check", ""] + [f"- {c}" for c in check]
    if failed:
        lines += ["", "## failed", ""] + [f"- {f}" for f in failed]
    return "\n".join(lines) + "\n"


def top_half_check(rows: Sequence[ResultRow], ks: Sequence[int]) -> list[str]:
    """Per backbone: the best method by mean test AUKC, and its AUC at k = F/2 over its AUC at k = F
    (F = the largest k of the grid; needs F/2 rounded up in the grid)."""
    f = max(ks)
    half = (f + 1) // 2
    if half not in ks or half == f:
        return []
    aukcs: dict[str, list[float]] = {}
    for r in rows:
        if r.split == "test" and r.segment == "aukc":
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
