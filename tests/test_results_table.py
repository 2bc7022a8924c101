"""The mean ± std markdown table: column order and empty groups."""

from __future__ import annotations

import math
from pathlib import Path

from recwise.results import ResultRow, summary_markdown


def _rows(model: str, segment: str, values: list[float]) -> list[ResultRow]:
    return [ResultRow("sequential", "ml-100k", model, seed, "test", segment, "ndcg@10", v)
            for seed, v in enumerate(values)]


def test_segments_in_natural_order_and_empty_groups_shown_as_dash() -> None:
    rows = [*_rows("a", "len=20-inf", [0.5, 0.7]), *_rows("a", "len=5-20", [0.1, 0.3]),
            *_rows("a", "len=0-5", [math.nan, math.nan]), *_rows("a", "all", [0.2, 0.4]),
            *_rows("b", "all", [0.1, 0.1])]
    header, _, row_a, row_b = summary_markdown(rows, metrics=("ndcg@10",)).splitlines()
    assert header.split(" | ")[2:] == ["ndcg@10 all", "ndcg@10 len=0-5", "ndcg@10 len=5-20", "ndcg@10 len=20-inf |"]
    cells_a = [c.strip() for c in row_a.strip("| ").split("|")]
    assert cells_a == ["a", "2", "**0.3000 ± 0.1414**", "-", "**0.2000 ± 0.1414**", "**0.6000 ± 0.1414**"]
    assert "nan" not in row_b and row_b.count("-") == 3  # b has no length groups at all


def test_atomic_writes_get_the_mode_open_would_give_not_mkstemps_0600(tmp_path: Path) -> None:
    import os

    from recwise.results import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "presets.yaml", "a: 1\n")
        mode = (tmp_path / "presets.yaml").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o644  # readable by the group and others, as a plain open() would make it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_arm_table_keeps_the_given_order_and_one_segment() -> None:
    from recwise.results import mean_std_table

    rows = [*_rows("b", "all", [0.1, 0.3]), *_rows("a", "all", [0.5]), *_rows("a", "len=0-5", [0.9])]
    header, rule, row_a, row_b, row_c = mean_std_table(rows, {"a": 1, "b": 2, "c": 3}, ["ndcg@10", "hit@10"])
    assert header == "| arm | seeds | ndcg@10 | hit@10 |" and rule == "|---|---|---|---|"
    assert row_a == "| a | 1 | 0.5000 | - |"  # len=0-5's 0.9 is another segment
    assert row_b == "| b | 2 | 0.2000 ± 0.1414 | - |" and row_c == "| c | 3 | - | - |"
