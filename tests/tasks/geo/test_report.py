"""The world map of errors reads every cell's predictions.csv and plots one trace per arm."""

from __future__ import annotations

import json
from pathlib import Path

from recwise.tasks.geo.report import error_map_html, read_predictions


def test_error_map_has_one_trace_per_cell(tmp_path: Path) -> None:
    for arm, err in (("g3", "12.5"), ("nn", "900.0")):
        cell = tmp_path / arm
        cell.mkdir()
        (cell / "run.json").write_text(json.dumps({"arm": arm, "seed": 0}))
        (cell / "predictions.csv").write_text(
            "query_id,query,true_lat,true_lon,pred_lat,pred_lon,candidates,error_km\n"
            f"1,Lawrence,39.8,-86.0,39.7,-86.1,3,{err}\n2,Afif,23.9,42.9,0,0,1,{err}\n")
    preds = read_predictions(tmp_path)
    assert list(preds) == ["g3 (seed 0)", "nn (seed 0)"] and len(preds["nn (seed 0)"]) == 2
    page = error_map_html(preds, "geonames15000")
    assert page.count('"name":"g3 (seed 0)"') == 1 and '"name":"nn (seed 0)"' in page
    assert "Lawrence: 900 km" in page and "legendonly" in page
