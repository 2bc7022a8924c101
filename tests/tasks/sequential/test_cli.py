"""`recwise run sequential` on a small RecBole atomic file: results.csv with len=<group> segments."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.seq import write_atomic


@pytest.mark.slow  # two `recwise run` subprocesses
def test_run_sequential_writes_results_with_length_groups(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_atomic(raw)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "recwise", "run", "sequential", "--dataset", "ml-100k", "--data-dir", str(raw),
           "--model", "gru4rec", "--epochs", "2", "--out", str(out), "--quiet"]
    env_home = {"RECWISE_HOME": str(tmp_path / "home")}
    import os

    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env_home}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    segments = {r["segment"] for r in rows}
    assert {"all", "len=0-5", "len=5-20", "len=20-inf"} <= segments
    assert {r["metric"] for r in rows} >= {"hit@5", "ndcg@10", "mrr@20"}
    assert {r["task"] for r in rows} == {"sequential"}
    info = json.loads((out / "run.json").read_text())
    assert info["examples"] == "sequence" and info["epochs_run"] == 2
    assert (out / "model.safetensors").exists() and (out / "checkpoint").exists()
    # resume of a finished run reproduces the same numbers
    proc = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env={**os.environ, **env_home},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out / "results.csv") as fh:
        assert list(csv.DictReader(fh)) == rows
