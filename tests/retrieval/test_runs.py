"""TREC run files: round trip, order and malformed lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recwise.errors import DataError
from recwise.retrieval import Ranking, read_trec, write_trec


def test_ranking_to_run_skips_padding_and_round_trips(tmp_path: Path) -> None:
    ranking = Ranking(np.array([[2, 0, -1], [1, 2, 0]]), np.array([[3.0, 1.0, -np.inf], [0.5, 0.25, 0.125]],
                                                                    dtype=np.float32))
    run = ranking.to_run(["q1", "q2"], ["d0", "d1", "d2"])
    assert run == {"q1": {"d2": 3.0, "d0": 1.0}, "q2": {"d1": 0.5, "d2": 0.25, "d0": 0.125}}
    write_trec(tmp_path / "r.trec", run, tag="bm25")
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 d2 1 3.000000 bm25" and lines[2].startswith("q2 Q0 d1 1 ")
    assert read_trec(tmp_path / "r.trec") == run


def test_malformed_run_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "r.trec").write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 x\n")
    with pytest.raises(DataError, match=r"r\.trec:2: a TREC run line has 6 columns"):
        read_trec(tmp_path / "r.trec")
