"""The Ray executor: same results.csv as the local one; a worker that dies is retried once, then failed.

One local Ray (2 CPUs) serves the whole module: starting Ray costs seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from recwise.bench import Cell, run_grid
from recwise.cli import main
from recwise.results import ResultRow

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    import logging
    import tempfile

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import the tests package
    temp = tempfile.mkdtemp(prefix="rwray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
             logging_level=logging.WARNING)
    yield
    ray.shutdown()
    import shutil

    shutil.rmtree(temp, ignore_errors=True)


def crashing_cell(cell: Cell, out_dir: Path, shared: Any) -> list[ResultRow]:
    """Kills its own worker process: once (``crash: once``, remembered by a marker file) or always."""
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(shared)
    with open(root / "calls.txt", "a") as fh:
        fh.write(f"{cell.title} pid={os.getpid()}\n")
    crash = cell.options.get("crash")
    marker = out_dir / "crashed-once"
    if (crash == "once" and not marker.exists()) or (crash == "always" and not (root / "healed").exists()):
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return [ResultRow("toy", cell.dataset, cell.model, cell.seed, "test", "all", "n", float(len(cell.title)))]


def test_dead_worker_is_retried_once_then_the_cell_fails(local_ray: None, tmp_path: Path) -> None:
    cells = [Cell("toy", "d", "once", 0, {"crash": "once"}), Cell("toy", "d", "always", 0, {"crash": "always"}),
             Cell("toy", "d", "fine", 0, {})]
    res = run_grid(cells, crashing_cell, tmp_path / "out", shared=str(tmp_path), executor="ray", store=False,
                   quiet=True)
    by_model = {r.model: r for r in res.records}
    assert by_model["once"].status == "done" and by_model["once"].attempts == 2
    assert by_model["fine"].status == "done" and by_model["fine"].attempts == 1
    failed = by_model["always"]
    assert failed.status == "failed" and failed.attempts == 2
    assert failed.reason.startswith("worker died: WorkerCrashedError") and "(tried 2 times)" in failed.reason
    assert [f["model"] for f in json.loads((tmp_path / "out" / "failures.json").read_text())] == ["always"]
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert sorted(c.split(" pid")[0] for c in calls) == ["always seed 0"] * 2 + ["fine seed 0"] + ["once seed 0"] * 2

    (tmp_path / "healed").touch()  # the re-run runs only the failed cell
    res = run_grid(cells, crashing_cell, tmp_path / "out", shared=str(tmp_path), executor="ray", store=False,
                   quiet=True)
    assert (res.ran, res.reused, len(res.failed)) == (1, 2, 0)
    assert (tmp_path / "calls.txt").read_text().splitlines()[5:][0].startswith("always seed 0")
    assert [r.model for r in res.rows] == ["once", "always", "fine"]


def test_local_and_ray_executors_write_identical_results(local_ray: None, ml100k_dir: Path, rw_home: Path,
                                                         tmp_path: Path) -> None:
    common = ["--quiet", "--threads", "1", "bench", "msr", "--models", "lr,sharedbottom", "--seeds", "1",
              "--epochs", "1", "--data-dir", str(ml100k_dir), "--store", "none"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    local = (tmp_path / "local" / "results.csv").read_text()
    assert local == (tmp_path / "ray" / "results.csv").read_text() and len(local.splitlines()) == 1 + 2 * 2 * 4 * 2
    for cell in ("lr/seed0", "sharedbottom/seed0"):
        a = json.loads((tmp_path / "local" / "cells" / cell / "cell.json").read_text())
        b = json.loads((tmp_path / "ray" / "cells" / cell / "cell.json").read_text())
        assert a["key"] == b["key"] and (a["executor"], b["executor"]) == ("local", "ray")
        ra = json.loads((tmp_path / "local" / "cells" / cell / "run.json").read_text())
        rb = json.loads((tmp_path / "ray" / "cells" / cell / "run.json").read_text())
        assert ra["config_hash"] == rb["config_hash"]
        assert [(h["loss"], h["val"]) for h in ra["history"]] == [(h["loss"], h["val"]) for h in rb["history"]]
