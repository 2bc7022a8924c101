"""One static HTML page from the results store: leaderboards, per-segment plots, failures, provenance.

The page is self-contained: plotly.js is inlined once in ``<head>`` (about 4.8 MB), every figure is
a ``<div>`` drawn by it, and tables are plain HTML with a small stylesheet, so the file opens from
disk with no network. Sections are one per (task, dataset):

* a leaderboard on the ``all`` segment of the chosen split (or, for a task without one, its summary
  segments such as selection's ``aukc``): mean ± std over seeds, best in bold, rows sorted by the
  primary metric, with the seed count, mean wall time and peak memory;
* one figure per segment family and chart metric: ``scenario=<i>`` as grouped bars (one bar per
  scenario for each model); ``k=<k>``, ``len=<group>`` and ``pop=<bin>`` as curves (one per model;
  one chart per backbone when more than 10 models are named ``<backbone>+<method>``); any other
  ``<name>=<value>`` family as grouped bars, or as curves when it has more than 5 values;
* then the failed cells of every task and the runs' provenance: each distinct (git commit, torch
  threads, executor, deterministic mode, library versions) behind the shown rows with its row
  count (as under ``recwise results``), then per model its runs, config hashes, versions and commits.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recwise.errors import DependencyError
from recwise.results import atomic_write_text, lower_is_better
from recwise.results import natural_key as _natural
from recwise.store import ResultStore

__all__ = ["build_report", "lower_is_better", "metric_order", "render_page"]

# metrics shown first, in this order; the rest follow sorted by name and cutoff
_PRIMARY = ("auc", "gauc", "aukc", "ndcg@10", "hit@10", "recall@10", "mrr@10", "accuracy", "logloss")
_CHART_METRICS = 2  # figures per segment family: the two leading metrics
_CURVE_FAMILIES = ("k", "len", "pop")  # ordered segment families drawn as curves; others as grouped bars
_MAX_BAR_VALUES = 5  # ... unless a family has more values than this (and is not "scenario")
_MAX_CURVES = 10  # more models than this, named "<backbone>+<method>": one chart per backbone
_AXIS_TITLES = {"k": "k (features kept)", "len": "history length (items)", "pop": "popularity bin of the target"}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd", "#e6550d", "#31a354",
            "#756bb1", "#636363")


def metric_order(metrics: Iterable[str]) -> list[str]:
    """Known headline metrics first (auc, ndcg@10, ...), then the others in natural order."""
    ms = set(metrics)
    head = [m for m in _PRIMARY if m in ms]
    return head + sorted(ms - set(head), key=lambda m: (lower_is_better(m), _natural(m)))


def _segment_value(segment: str) -> tuple[str, str]:
    name, _, value = segment.partition("=")
    return (name, value) if value else ("", segment)


def _segment_sort_key(value: str) -> tuple[Any, ...]:
    """k=8 < k=16; len=0-5 < len=5-10 < len=50-inf: order by the first number, then naturally."""
    m = re.match(r"-?\d+(\.\d+)?", value)
    return (0, float(m.group()), _natural(value)) if m else (1, 0.0, _natural(value))


def _fmt(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.4f} ± {std:.4f}"


def _slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#dde1e8; --band:#f5f7fa; --accent:#2456a6; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; color:var(--fg); }
main { max-width:1180px; margin:0 auto; padding:20px 24px 48px; }
header h1 { font-size:24px; margin:0 0 4px; }
header p { margin:0; color:var(--muted); }
nav { margin:14px 0 8px; display:flex; flex-wrap:wrap; gap:6px 14px; }
nav a { color:var(--accent); text-decoration:none; }
nav a:hover { text-decoration:underline; }
section { margin-top:30px; border-top:2px solid var(--line); padding-top:6px; }
h2 { font-size:20px; margin:10px 0 6px; }
h3 { font-size:16px; margin:18px 0 6px; }
.note { color:var(--muted); font-size:13px; margin:4px 0 10px; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; font-size:14px; font-variant-numeric:tabular-nums; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { text-align:left; background:var(--band); font-weight:600; position:sticky; top:0; }
td.num, th.num { text-align:right; }
tbody tr:nth-child(even) { background:#fafbfc; }
tbody tr:hover { background:#eef3fb; }
td.best { font-weight:700; }
.warn { color:#a33; }
.fig { width:100%; min-height:360px; }
.ok { color:#2a7a3b; }
code { font-size:13px; }
"""


def _table(head: Sequence[tuple[str, str]], body: Iterable[Sequence[tuple[str, str]]], *, cls: str = "") -> str:
    """``head``: (label, css class); ``body`` rows of (text-or-html, css class). Texts are escaped by the caller."""
    out = [f'<div class="scroll"><table class="{cls}"><thead><tr>']
    out += [f'<th class="{c}">{t}</th>' for t, c in head]
    out.append("</tr></thead><tbody>")
    for row in body:
        out.append("<tr>" + "".join(f'<td class="{c}">{t}</td>' for t, c in row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


class _Section:
    """Everything shown for one (task, dataset)."""

    def __init__(self, task: str, dataset: str, stats: list[dict[str, Any]], runs: dict[str, dict[str, Any]],
                 colors: dict[str, str]) -> None:
        self.task, self.dataset, self.stats, self.runs, self.colors = task, dataset, stats, runs, colors
        self.id = _slug(task, dataset)

    def leaderboard(self) -> tuple[str, list[str]]:
        """The table's HTML and its models in row order."""
        overall = [s for s in self.stats if s["segment"] == "all"]
        plain = [s for s in self.stats if "=" not in s["segment"]]  # e.g. selection's "aukc"
        if overall:
            cols = [(m, "all") for m in metric_order({s["metric"] for s in overall})]
        elif plain:  # no overall segment: the summary segments (no "name=value"), one column each
            cols = [(m, seg) for m in metric_order({s["metric"] for s in plain})
                    for seg in sorted({s["segment"] for s in plain if s["metric"] == m})]
        else:  # only per-segment rows: every (metric, segment) is a column
            cols = [(m, seg) for m in metric_order({s["metric"] for s in self.stats})
                    for seg in sorted({s["segment"] for s in self.stats if s["metric"] == m},
                                      key=lambda v: _segment_sort_key(_segment_value(v)[1]))]
        cell = {(s["model"], s["metric"], s["segment"]): s for s in self.stats}
        models = sorted({s["model"] for s in self.stats})
        m0, seg0 = cols[0]
        sign = 1 if lower_is_better(m0) else -1
        models.sort(key=lambda mod: (cell[(mod, m0, seg0)]["mean"] * sign if (mod, m0, seg0) in cell else math.inf,
                                     mod))
        best: dict[tuple[str, str], float] = {}
        for m, seg in cols:
            means = [round(cell[(mod, m, seg)]["mean"], 4) for mod in models
                     if (mod, m, seg) in cell and not math.isnan(cell[(mod, m, seg)]["mean"])]
            if means:
                best[(m, seg)] = min(means) if lower_is_better(m) else max(means)
        show_seg = any(seg != "all" for _, seg in cols)
        arrow = {True: " ↓", False: " ↑"}
        head = [("model", ""), ("seeds", "num")]
        head += [(html.escape(m + (f" {seg}" if show_seg else "")) + arrow[lower_is_better(m)], "num")
                 for m, seg in cols]
        has_wall = any(self.runs.get(mod, {}).get("wall") is not None for mod in models)
        has_rss = any(self.runs.get(mod, {}).get("rss") is not None for mod in models)
        head += [("wall s / seed", "num")] * has_wall + [("peak MiB", "num")] * has_rss
        body = []
        for mod in models:
            counts = {cell[(mod, m, seg)]["count"] for m, seg in cols if (mod, m, seg) in cell}
            row = [(html.escape(mod), ""), (html.escape("/".join(str(c) for c in sorted(counts))), "num")]
            for m, seg in cols:
                s = cell.get((mod, m, seg))
                if s is None:
                    row.append(("–", "num"))
                    continue
                is_best = best.get((m, seg)) == round(s["mean"], 4)
                row.append((_fmt(s["mean"], s["std"]), "num best" if is_best else "num"))
            run = self.runs.get(mod, {})
            if has_wall:
                row.append((f"{run['wall']:.1f}" if run.get("wall") is not None else "–", "num"))
            if has_rss:
                row.append((f"{run['rss']:.0f}" if run.get("rss") is not None else "–", "num"))
            body.append(row)
        return _table(head, body, cls="leaderboard"), models

    def figures(self, models: list[str]) -> list[tuple[str, Any]]:
        """(title, plotly figure) per segment family and chart metric."""
        families: dict[str, set[str]] = defaultdict(set)
        for s in self.stats:
            name, value = _segment_value(s["segment"])
            if name:
                families[name].add(value)
        out = []
        cell = {(s["model"], s["metric"], s["segment"]): s for s in self.stats}
        for fam in sorted(families):
            values = sorted(families[fam], key=_segment_sort_key)
            fam_metrics = metric_order({s["metric"] for s in self.stats if _segment_value(s["segment"])[0] == fam})
            curves = fam in _CURVE_FAMILIES or (fam != "scenario" and len(values) > _MAX_BAR_VALUES)
            for metric in fam_metrics[:_CHART_METRICS]:
                for facet, group in _facets(models) if curves else [("", models)]:
                    title, fig = self._figure(fam, values, metric, group, cell, curves=curves)
                    out.append((f"{title}: {facet}" if facet else title, fig))
        return out

    def _figure(self, fam: str, values: list[str], metric: str, models: list[str],
                cell: dict[tuple[str, str, str], dict[str, Any]], *, curves: bool) -> tuple[str, Any]:
        import plotly.graph_objects as go

        fig = go.Figure()
        lows, highs = [], []
        if curves:  # one line per model over the family's values
            numeric = fam == "k" and all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in values)
            for mod in models:
                pts = [(v, cell[(mod, metric, f"{fam}={v}")]) for v in values if (mod, metric, f"{fam}={v}") in cell]
                if not pts:
                    continue
                xs = [float(v) if numeric else v for v, _ in pts]
                ys = [s["mean"] for _, s in pts]
                sd = [s["std"] for _, s in pts]
                lows += [y - e for y, e in zip(ys, sd)]
                highs += [y + e for y, e in zip(ys, sd)]
                fig.add_trace(go.Scatter(x=xs, y=ys, name=mod, mode="lines+markers",
                                         line={"color": self.colors[mod], "width": 2}, marker={"size": 6},
                                         error_y={"type": "data", "array": sd, "visible": True, "thickness": 1},
                                         hovertemplate=f"{mod}<br>{fam}=%{{x}}<br>{metric} %{{y:.4f}}<extra></extra>"))
            axis = _AXIS_TITLES.get(fam, fam)
            title = f"{metric} vs {axis}"
            fig.update_xaxes(title_text=axis, type="linear" if numeric else "category",
                             categoryorder="array", categoryarray=values)
        else:  # grouped bars: one bar per segment value for each model, models in leaderboard order
            shades = _shades(len(values))
            for v, shade in zip(values, shades):
                seg = f"{fam}={v}"
                present = [mod for mod in models if (mod, metric, seg) in cell]
                ys = [cell[(mod, metric, seg)]["mean"] for mod in present]
                sd = [cell[(mod, metric, seg)]["std"] for mod in present]
                lows += [y - e for y, e in zip(ys, sd)]
                highs += [y + e for y, e in zip(ys, sd)]
                fig.add_trace(go.Bar(x=present, y=ys, name=f"{fam} {v}", marker_color=shade,
                                     error_y={"type": "data", "array": sd, "visible": True, "thickness": 1},
                                     hovertemplate=f"%{{x}}<br>{fam} {v}<br>{metric} %{{y:.4f}}<extra></extra>"))
            fig.update_layout(barmode="group", bargap=0.25)
            fig.update_xaxes(categoryorder="array", categoryarray=models, tickangle=-30)
            title = f"{metric} per {fam}"
        finite = [x for x in lows + highs if not math.isnan(x)]
        if finite:  # zoom on the spread: AUCs of 0.76-0.78 are invisible on a 0-1 axis
            lo, hi = min(finite), max(finite)
            pad = max((hi - lo) * 0.12, 1e-3)
            fig.update_yaxes(range=[lo - pad, hi + pad])
        fig.update_layout(
            yaxis_title=metric, template="plotly_white", height=400, autosize=True, showlegend=True,
            margin={"l": 60, "r": 20, "t": 40, "b": 60},
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "font": {"size": 12}},
            font={"family": "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif", "size": 13},
        )
        return f"{title} ({'lower' if lower_is_better(metric) else 'higher'} is better)", fig


def _facets(models: list[str]) -> list[tuple[str, list[str]]]:
    """Split many curves into one chart per prefix ("mlp+lasso", "mlp+gbdt" -> "mlp"), else one chart."""
    prefixes = sorted({m.split("+", 1)[0] for m in models if "+" in m})
    if len(models) <= _MAX_CURVES or not prefixes:
        return [("", models)]
    groups = [(p, [m for m in models if m.split("+", 1)[0] == p and "+" in m]) for p in prefixes]
    rest = [m for m in models if "+" not in m]
    return groups + ([("other", rest)] if rest else [])


def _shades(n: int) -> list[str]:
    """n blues from light to dark (scenario bars), so the order reads at a glance."""
    if n <= 1:
        return ["#2456a6"]
    out = []
    for i in range(n):
        t = i / (n - 1)
        r, g, b = (int(a + (c - a) * t) for a, c in zip((158, 202, 225), (8, 48, 107)))
        out.append(f"#{r:02x}{g:02x}{b:02x}")
    return out


def _run_info(df: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Mean wall seconds per run and largest peak RSS, per (task, dataset, model), from the rows' metadata."""
    import polars as pl

    if df.height == 0:
        return {}
    per_run = df.group_by(["task", "dataset", "model", "run_id"]).agg(
        pl.col("wall_seconds").first(), pl.col("peak_rss_mb").first())
    agg = per_run.group_by(["task", "dataset", "model"]).agg(
        pl.col("wall_seconds").fill_nan(None).mean().alias("wall"),
        pl.col("peak_rss_mb").fill_nan(None).max().alias("rss"))
    return {(r["task"], r["dataset"], r["model"]): r for r in agg.iter_rows(named=True)}


def render_page(store: ResultStore, *, split: str = "test", title: str = "recwise results",
                source_label: str | None = None) -> str:
    """The report page as one HTML string (see the module docstring)."""
    try:
        import plotly.offline
    except ImportError:
        raise DependencyError("the report needs plotly: pip install 'recwise[grid]'") from None
    stats = store.summary(split=split).to_dicts()
    rows = store.query(split=split)
    failures = store.failures().to_dicts()
    runs = _run_info(rows)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in stats:
        groups[(s["task"], s["dataset"])].append(s)
    all_models = sorted({s["model"] for s in stats})
    colors = {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(all_models)}
    sections = [_Section(t, d, groups[(t, d)], {m: runs[(t, d, m)] for (tt, dd, m) in runs if (tt, dd) == (t, d)},
                         colors) for t, d in sorted(groups)]

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    n_runs = rows["run_id"].n_unique() if rows.height else 0
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>",
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body><main>",
        f"<header><h1>{html.escape(title)}</h1><p>{len(sections)} task/dataset group{'s' * (len(sections) != 1)}, "
        f"{n_runs} runs, "
        f"{rows.height} {html.escape(split)} rows, {len(failures)} failed cells · source "
        f"<code>{html.escape(source_label or str(store.path))}</code> · generated {now}</p></header>",
        "<nav>" + "".join(f"<a href='#{s.id}'>{html.escape(s.task)} · {html.escape(s.dataset)}</a>" for s in sections)
        + "<a href='#failures'>failures</a><a href='#provenance'>provenance</a></nav>",
    ]
    if not sections:
        parts.append(f"<p>No {html.escape(split)} results in the store yet.</p>")
    fig_no = 0
    for sec in sections:
        table, models = sec.leaderboard()
        parts.append(f"<section id='{sec.id}'><h2>{html.escape(sec.task)} on {html.escape(sec.dataset)}</h2>")
        parts.append(f"<p class='note'>{html.escape(split)} split, mean ± sample std over seeds; best of each column "
                     "in bold (↑ higher is better, ↓ lower is better); rows sorted by the first metric.</p>")
        parts.append(table)
        for fig_title, fig in sec.figures(models):
            fig_no += 1
            parts.append(f"<h3>{html.escape(fig_title)}</h3>")  # the figure itself carries no title
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig{fig_no}",
                                     default_width="100%", default_height="400px",
                                     config={"displaylogo": False, "responsive": True}))
        parts.append("</section>")

    parts.append("<section id='failures'><h2>Failed cells</h2>")
    if failures:
        parts.append("<p class='note'>Cells whose latest attempt failed (a later successful run clears them); "
                     "re-running the grid runs only these and the missing cells.</p>")
        parts.append(_table([("task", ""), ("dataset", ""), ("model", ""), ("seed", "num"), ("reason", ""),
                             ("when (UTC)", "")],
                            [[(html.escape(f["task"]), ""), (html.escape(f["dataset"]), ""),
                              (html.escape(f["model"]), ""), (str(f["seed"]), "num"),
                              (html.escape(f["error"] or ""), "warn"),
                              (f["created_at"].strftime("%Y-%m-%d %H:%M") if f["created_at"] else "", "")]
                             for f in failures], cls="failures"))
    else:
        parts.append("<p class='ok'>No failed cells.</p>")
    parts.append("</section>")

    parts.append("<section id='provenance'><h2>Provenance</h2>")
    if rows.height:
        import polars as pl

        parts.append(_provenance_table(store.provenance(split=split).to_dicts()))
        prov = rows.group_by(["task", "dataset", "model"]).agg(
            pl.col("run_id").n_unique().alias("runs"), pl.col("config_hash").drop_nulls().unique().sort(),
            pl.col("version").drop_nulls().unique().sort(), pl.col("git_commit").drop_nulls().unique().sort(),
            pl.col("threads").drop_nulls().unique().sort(), pl.col("executor").drop_nulls().unique().sort(),
            pl.col("deterministic").drop_nulls().unique().sort(),
            pl.col("created_at").max().alias("last")).sort(["task", "dataset", "model"])

        def _join(vals: list[Any], n: int = 12) -> str:
            return html.escape(", ".join(_word(v)[:n] for v in vals)) if vals else "–"

        parts.append("<p class='note'>Per model: its runs, config hashes, versions, commits and how they "
                     "ran.</p>")
        parts.append(_table(
            [("task", ""), ("dataset", ""), ("model", ""), ("runs", "num"), ("config hash", ""), ("version", ""),
             ("git commit", ""), ("threads", "num"), ("executor", ""), ("deterministic", ""),
             ("last stored (UTC)", "")],
            [[(html.escape(r["task"]), ""), (html.escape(r["dataset"]), ""), (html.escape(r["model"]), ""),
              (str(r["runs"]), "num"), (_join(r["config_hash"]), ""), (_join(r["version"]), ""),
              (_join(r["git_commit"], 10), ""), (_join(r["threads"]), "num"), (_join(r["executor"]), ""),
              (_join(r["deterministic"]), ""), (r["last"].strftime("%Y-%m-%d %H:%M"), "")]
             for r in prov.iter_rows(named=True)], cls="provenance"))
    parts.append("</section></main></body></html>")
    return "\n".join(parts)


def _word(value: Any) -> str:
    """A table cell's text: booleans as yes/no, None as '?'."""
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _packages(blob: str | None) -> str:
    """``{"python": "3.11.7", "torch": ...}`` (JSON) -> ``python 3.11.7 · torch ...``; '?' when unknown."""
    if not blob:
        return "?"
    try:
        versions = json.loads(blob)
    except json.JSONDecodeError:
        return blob
    return " · ".join(f"{name} {ver if ver is not None else '–'}" for name, ver in versions.items())


def _provenance_table(recs: list[dict[str, Any]]) -> str:
    """Each distinct provenance behind the shown rows, with its row and run counts ('?' = not recorded)."""
    body = []
    for r in recs:
        commit = (r["git_commit"][:10] + (" (dirty)" if r["git_dirty"] else "")) if r["git_commit"] else "?"
        body.append([(html.escape(commit), ""), (html.escape(_word(r["threads"])), "num"),
                     (html.escape(_word(r["executor"])), ""), (html.escape(_word(r["deterministic"])), ""),
                     (html.escape(_word(r["version"])), ""), (html.escape(_packages(r["packages"])), ""),
                     (str(r["rows"]), "num"), (str(r["runs"]), "num")])
    note = ("<p class='note'>How the rows above were computed: one line per distinct git commit, torch threads, "
            "executor, deterministic mode and library versions, with the rows and runs behind it "
            "(? = not recorded, e.g. rows imported from older runs).</p>")
    return note + _table([("git commit", ""), ("threads", "num"), ("executor", ""), ("deterministic", ""),
                          ("recwise", ""), ("packages", ""), ("rows", "num"), ("runs", "num")], body,
                         cls="provenance-combos")


def build_report(store: ResultStore, out_dir: str | Path, *, split: str = "test", title: str = "recwise results",
                 source_label: str | None = None) -> Path:
    """Write ``<out_dir>/index.html`` (atomically) and return its path."""
    page = render_page(store, split=split, title=title, source_label=source_label)
    path = Path(out_dir) / "index.html"
    atomic_write_text(path, page)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)  # a page to share or serve, not a private temp file
    return path
