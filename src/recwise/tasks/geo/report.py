"""The bench's world map of errors: every query at its true position, coloured by its error (km).

A plain longitude/latitude scatter (equirectangular; plotly inlined, so the page needs no network),
one trace per arm (the legend toggles them), the query and its error on hover. The held-out places
themselves sketch the continents.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["error_map_html", "read_predictions"]


def read_predictions(folder: Path) -> dict[str, list[dict[str, str]]]:
    """``{arm (seed s): rows of predictions.csv}`` for every cell folder under ``folder``."""
    out: dict[str, list[dict[str, str]]] = {}
    for path in sorted(folder.rglob("predictions.csv")):
        info = path.parent / "run.json"
        label = path.parent.name
        if info.is_file():
            import json

            d = json.loads(info.read_text())
            label = f"{d.get('arm', label)} (seed {d.get('seed', '?')})"
        with path.open(newline="", encoding="utf-8") as f:
            out[label] = list(csv.DictReader(f))
    return out


def error_map_html(predictions: dict[str, list[dict[str, str]]], dataset: str) -> str:
    """Self-contained HTML: true positions coloured by log10(error km), one trace per arm."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (label, rows) in enumerate(predictions.items()):
        err = np.array([float(r["error_km"]) for r in rows])
        fig.add_trace(go.Scatter(
            x=[float(r["true_lon"]) for r in rows], y=[float(r["true_lat"]) for r in rows], mode="markers",
            name=label, visible=True if i == 0 else "legendonly",
            text=[f"{r['query']}: {float(r['error_km']):.0f} km" for r in rows], hoverinfo="text",
            marker={"size": 6, "color": np.log10(np.maximum(err, 1.0)), "colorscale": "Viridis", "cmin": 0, "cmax": 4.3,
                    "colorbar": {"title": "error (km)", "tickvals": [0, 1, 2, 3, 4],
                                 "ticktext": ["1", "10", "100", "1000", "10000"]} if i == 0 else None}))
    fig.update_xaxes(range=[-180, 180], title_text="longitude", zeroline=False)
    fig.update_yaxes(range=[-90, 90], title_text="latitude", scaleanchor="x", zeroline=False)
    fig.update_layout(title=f"geo on {dataset}: error per query at its true position (click the legend for arms)",
                      template="plotly_white", height=560, width=1050)
    return fig.to_html(include_plotlyjs=True, full_html=True)
