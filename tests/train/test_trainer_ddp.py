"""One training across two processes (DDP, gloo on CPU) against the same training in one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from recwise.tasks.msr import MSRRun, run
from tests.train import _ddp_worker as w

pytestmark = [
    pytest.mark.skipif(not torch.distributed.is_available(), reason="optional: torch.distributed not built"),
    pytest.mark.slow,  # two spawned training processes
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(w.worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return out


def test_two_processes_compute_the_one_process_gradients(two_procs: Path) -> None:
    """Without BatchNorm or dropout, DDP over shares of every batch is one-process training up to float
    rounding (the two shares' gradient means are summed in another order): same weights to 1e-5,
    from in-memory tensors and from a stream alike."""
    single = w.fit_tiny(w.planted(), "memory")
    ranks = [torch.load(two_procs / f"tiny{r}.pt") for r in (0, 1)]
    for src in ("memory", "stream"):
        for k, v in single.items():
            assert torch.equal(ranks[0][src][k], ranks[1][src][k]), (src, k)  # the replicas stay identical
            torch.testing.assert_close(ranks[0][src][k], v, atol=1e-5, rtol=1e-4, msg=f"{src} {k}")


def test_msr_run_under_ddp_matches_one_process(two_procs: Path) -> None:
    """MMoE (BatchNorm in its gates) through msr.run: each process normalises its half batch, so the
    numbers move by noise. Tolerance 0.02 test AUC: on this data one process gives 0.778-0.795 over
    seeds 0-3 (std about 0.007), so 0.02 is about 3 seed std; the lead over chance (0.5) is 0.28."""
    r0, r1 = (json.loads((two_procs / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["rows"] == r1["rows"]  # every process returns rank 0's metrics
    assert r1["writes"] == [] and {"write_results", "save_model", "save_training_state"} <= set(r0["writes"])
    info = json.loads((two_procs / "run" / "run.json").read_text())
    assert info["world_size"] == 2 and info["epochs_run"] == 3
    assert info["history"][0]["train_samples"] == 4800  # the two shares together: the whole train split once
    single = run(MSRRun("planted", "mmoe", 0), w.planted(), train_options=w.MSR_TRAIN, progress=False)
    one = w.test_auc([[r.split, r.segment, r.metric, r.value] for r in single])
    two = w.test_auc(r0["rows"])
    assert one > 0.7 and abs(one - two) < 0.02, (one, two)


@pytest.mark.slow
def test_torchrun_cli_on_movielens(ml100k_dir: Path, tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 -m recwise run msr` on MovieLens-100K: the test AUC of one process
    within 0.01 (BatchNorm statistics per half batch; seeds move it by about as much)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECWISE_HOME": str(tmp_path / "home")}
    args = ["-m", "recwise", "--threads", "1", "--quiet", "run", "msr", "--model", "mmoe", "--epochs", "2",
            "--data-dir", str(ml100k_dir)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-port", str(_free_port())]
    subprocess.run([*torchrun, *args, "--out", str(tmp_path / "two")], env=env, check=True, capture_output=True,
                   timeout=300)
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env, check=True,
                   capture_output=True, timeout=300)
    auc = {}
    for name in ("one", "two"):
        for line in (tmp_path / name / "results.csv").read_text().splitlines():
            if ",test,all,auc," in line:
                auc[name] = float(line.rsplit(",", 1)[1])
    info = json.loads((tmp_path / "two" / "run.json").read_text())
    assert info["world_size"] == 2
    assert auc["one"] > 0.7 and abs(auc["one"] - auc["two"]) < 0.01, auc
