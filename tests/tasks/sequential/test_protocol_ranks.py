"""A sequential cell keeps every test user's rank (test_ranks.npz), the ranks its test metrics come from; a cell
finished without them gets the same file back from its saved model, and only when they repeat its metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from recwise.errors import DataError
from recwise.metrics.ranking import rank_gains
from recwise.tasks.sequential import SeqRun, run
from recwise.tasks.sequential.protocol import write_test_ranks
from tests.fixtures.seq import planted_sequences

OPTS = {"train_options": {"epochs": 2, "batch_size": 128}, "model_options": {"hidden_size": 16}, "progress": False}


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    seqs = planted_sequences(n_users=200, n_items=30, length=12)
    out = tmp_path_factory.mktemp("cell")
    rows = run(SeqRun("toy", "sasrec", 0), seqs, out_dir=out, data_key="toy-key", **OPTS)
    return seqs, out, rows


def test_the_kept_ranks_give_the_cells_test_metrics(cell) -> None:  # noqa: ANN001
    seqs, out, rows = cell
    with np.load(out / "test_ranks.npz") as d:
        ranks, item_len, user = d["rank"], d["item_len"], d["user"]
    assert len(ranks) == len(user) == 200 and len(np.unique(user)) == 200
    assert ranks.min() >= 0 and ranks.max() < seqs.n_items
    test = {(r.segment, r.metric): r.value for r in rows if r.split == "test"}
    for metric in ("hit@10", "ndcg@10", "mrr@20"):
        assert rank_gains(ranks, metric).mean() == pytest.approx(test[("all", metric)], abs=1e-12)
        sel = (item_len >= 5) & (item_len < 20)
        assert rank_gains(ranks[sel], metric).mean() == pytest.approx(test[("len=5-20", metric)], abs=1e-12)
    assert len(set(np.round(rank_gains(ranks, "ndcg@10"), 6))) > 2  # per-user values, not one repeated mean


def test_ranks_rescored_from_the_saved_model_are_the_kept_ones(cell, tmp_path: Path) -> None:  # noqa: ANN001
    seqs, out, _ = cell
    kept = dict(np.load(out / "test_ranks.npz"))
    copy = tmp_path / "cell"
    copy.mkdir()
    for name in ("run.json", "results.csv", "model.json", "model.safetensors"):
        (copy / name).write_bytes((out / name).read_bytes())
    write_test_ranks(copy, seqs)
    again = dict(np.load(copy / "test_ranks.npz"))
    assert again.keys() == kept.keys() and all(np.array_equal(again[k], kept[k]) for k in kept)


def test_a_model_that_does_not_repeat_the_metrics_writes_nothing(cell, tmp_path: Path) -> None:  # noqa: ANN001
    seqs, out, _ = cell
    copy = tmp_path / "cell"
    copy.mkdir()
    for name in ("run.json", "model.json", "model.safetensors"):
        (copy / name).write_bytes((out / name).read_bytes())
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["split"] == "test" and r["segment"] == "all" and r["metric"] == "ndcg@10":
            r["value"] = f"{float(r['value']) + 0.01:.6f}"
    with (copy / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(DataError, match=r"ndcg@10 \(all\).*test_ranks.npz not written"):
        write_test_ranks(copy, seqs)
    assert not (copy / "test_ranks.npz").exists()
    with pytest.raises(DataError, match="trained on data"):
        write_test_ranks(out, seqs, data_key="other")
    with pytest.raises(DataError, match="not a finished sequential cell"):
        write_test_ranks(tmp_path, seqs)
