"""`recwise run sequential` on a small RecBole atomic file: results.csv with len=<group> segments."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def _atomic(folder: Path, users: int = 40) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(users):
        n = int(rng.integers(3, 40))  # lengths fall into all three groups
        start = int(rng.integers(0, 30))
        for t in range(n):
            lines.append(f"u{u}\ti{(start + t) % 30}\t4\t{1000 + t}")
    (folder / "ml-100k.inter").write_text("\n".join(lines) + "\n")


def test_run_sequential_writes_results_with_length_groups(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _atomic(raw)
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
