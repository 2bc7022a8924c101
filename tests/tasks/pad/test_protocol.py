"""PAD end to end: phases resume from their checkpoints; on ML-100K it beats popularity; the CLI."""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
import torch

import recwise.tasks.pad.protocol as pad_task
from recwise.data.sequence import eval_inputs
from recwise.metrics.sequential import (
    evaluate_by_popularity,
    popularity_bins,
    train_item_counts,
)
from recwise.models.seq.pad import PADPhase1, PADPhase3
from recwise.tasks.pad import PADRun, PADTextConfig, encode_item_texts, run
from tests.fixtures.seq import write_atomic_with_items

TINY = {"hidden_size": 16, "n_layers": 1, "n_heads": 1, "inner_size": 32, "max_len": 6, "text_layers": 1,
        "mmd_group": 4}
FAST = {"epochs": 2, "lr1": 1e-2, "lr2": 1e-2, "lr3": 1e-2, "batch_size": 32}
HASH = {"encoder": "hash", "hash_dim": 32}


def _same(a: list, b: list) -> bool:
    """Rows equal, NaN (an empty segment) equal to NaN."""
    key = lambda r: (*astuple(r)[:-1], "nan" if r.value != r.value else r.value)  # noqa: E731
    return [key(r) for r in a] == [key(r) for r in b]


def test_text_cache_is_keyed_by_encoder_and_texts(tmp_path: Path) -> None:
    texts = ["Toy Story 1995 Animation", "GoldenEye 1995 Action"]
    a, info = encode_item_texts(texts, PADTextConfig(**HASH), root=tmp_path)
    assert info["cache"] == "miss" and a.shape == (3, 32) and not a[0].any()
    np.testing.assert_allclose(np.linalg.norm(a[1:], axis=1), 1.0, rtol=1e-5)
    b, info = encode_item_texts(texts, PADTextConfig(**HASH), root=tmp_path)
    assert info["cache"] == "hit" and np.array_equal(a, b)
    _, info = encode_item_texts(texts, PADTextConfig(encoder="hash", hash_dim=16), root=tmp_path)
    assert info["cache"] == "miss"
    _, info = encode_item_texts(texts[::-1], PADTextConfig(**HASH), root=tmp_path)
    assert info["cache"] == "miss"


def test_a_killed_run_resumes_at_its_last_phase_and_epoch(planted_text, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    seqs, texts = planted_text
    kw = dict(train_options=FAST, model_options=TINY, text_options=HASH, texts=texts, root=tmp_path, progress=False)
    whole = run(PADRun("planted", 0), seqs, out_dir=tmp_path / "a", **kw)

    real = pad_task.evaluate_by_popularity
    calls = {"phase3": 0}

    def dies_in_phase3(model, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if isinstance(model, PADPhase3):
            calls["phase3"] += 1
            if calls["phase3"] == 2:  # after phase 3's first epoch was checkpointed
                raise KeyboardInterrupt
        return real(model, *a, **k)

    monkeypatch.setattr(pad_task, "evaluate_by_popularity", dies_in_phase3)
    with pytest.raises(KeyboardInterrupt):
        run(PADRun("planted", 0), seqs, out_dir=tmp_path / "b", **kw)
    assert (tmp_path / "b/phase2/done.json").exists() and not (tmp_path / "b/phase3/done.json").exists()
    assert json.loads((tmp_path / "b/phase3/checkpoint/state.json").read_text())["epoch"] == 0
    monkeypatch.setattr(pad_task, "evaluate_by_popularity", real)

    def no_training(self, batch):  # noqa: ANN001, ANN202
        raise AssertionError("a finished phase was trained again")

    monkeypatch.setattr(PADPhase1, "loss", no_training)
    resumed = run(PADRun("planted", 0), seqs, out_dir=tmp_path / "b", resume=True, **kw)
    assert _same(resumed, whole)  # same numbers as the uninterrupted run, row for row
    info = json.loads((tmp_path / "b/run.json").read_text())
    assert set(info["timings"]) == {"phase0", "phase1", "phase2", "phase3"}
    assert info["phases"]["3"]["epochs_run"] == 2


@pytest.mark.slow
def test_pad_on_ml100k_beats_popularity(ml100k_raw: Path, tmp_path: Path) -> None:
    from recwise.data.seq_datasets import load_sequences

    seqs, _ = load_sequences("ml-100k", ml100k_raw, use_cache=False)
    rows = run(PADRun("ml-100k", 0), seqs, raw_dir=ml100k_raw, root=tmp_path, progress=False,
               train_options={"epochs": 4, "lr1": 1e-2, "lr2": 5e-3, "lr3": 5e-3},  # a small budget: 1 layer, d 32
               model_options={"hidden_size": 32, "n_layers": 1, "n_heads": 1, "inner_size": 64, "mmd_group": 2,
                              "max_len": 10},
               text_options={"encoder": "hash"})
    got = {(r.model, r.split, r.segment, r.metric): r.value for r in rows}
    counts = train_item_counts(seqs)
    test = eval_inputs(seqs, "test", 10, "left")

    class Pop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.s = torch.nn.Parameter(torch.from_numpy(np.log1p(counts)).float())

        def forward(self, b):  # noqa: ANN001, ANN202
            return self.s.expand(len(b["item_seq"]), -1).clone()

    pop = evaluate_by_popularity(Pop(), test, torch.from_numpy(seqs.items), popularity_bins(counts), mask=True)
    pad_ndcg = got[("pad", "test", "all", "ndcg@10")]
    assert pad_ndcg > 1.1 * pop["all"]["ndcg@10"], (pad_ndcg, pop["all"])
    assert got[("pad", "test", "all", "hit@10")] > pop["all"]["hit@10"]
    assert {f"pop={b}" for b in range(1, 11)} | {"pop=cold", "hist=short"} <= {k[2] for k in got}


@pytest.fixture(scope="module")
def ml100k_raw() -> Path:
    from recwise.data.seq_datasets import default_raw_dir

    raw = Path(os.environ.get("RECWISE_ML100K", default_raw_dir("ml-100k")))
    if not (raw / "ml-100k.item").exists() and not (raw / "u.item").exists():
        pytest.skip(f"MovieLens-100K item file not found in {raw}")
    return raw


def _atomic(folder: Path) -> None:
    write_atomic_with_items(folder, users=60, n_items=30, lengths=(5, 20))


@pytest.mark.slow
def test_cli_run_and_resume_and_bench(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    from recwise.cli import main

    raw = tmp_path / "raw"
    _atomic(raw)
    out = tmp_path / "run"
    monkeypatch.setenv("RECWISE_HOME", str(tmp_path / "home"))
    opts = ["--dataset", "ml-100k", "--data-dir", str(raw), "--epochs", "2", "--quiet", "--set", "text.encoder=hash",
            *[x for k, v in TINY.items() for x in ("--set", f"model.{k}={v}")], "--set", "train.lr1=1e-2"]
    cmd = ["--threads", "1", "run", "pad", *opts, "--out", str(out)]
    assert main(cmd) == 0
    stdout = capsys.readouterr().out
    assert "phase 0" in stdout and "pop=cold" in stdout
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["model"] for r in rows} == {"sasrec-bce", "pad-aligned", "pad"} and {r["task"] for r in rows} == {"pad"}
    assert {"all", "pop=1", "pop=10", "pop=warm", "pop=cold", "hist=short"} <= {r["segment"] for r in rows}
    info = json.loads((out / "run.json").read_text())
    assert info["phases"]["0"]["items"] == 30 and info["phases"]["0"]["example_text"].startswith("Movie number")
    assert info["phases"]["0"]["cache"] == "miss" and info["phases"]["1"]["epochs_run"] == 2
    assert all((out / f"phase{k}" / "model.safetensors").exists() for k in (1, 2, 3))
    # resuming a finished run trains nothing and writes the same numbers
    assert main(cmd + ["--resume"]) == 0
    with open(out / "results.csv") as fh:
        assert list(csv.DictReader(fh)) == rows
    assert json.loads((out / "run.json").read_text())["phases"]["0"]["cache"] == "hit"
    # bench (through the grid runner): seed 0's cell starts from the run above, whose finished phases
    # are loaded, not trained again; seed 1 runs
    bench = tmp_path / "bench"
    seed0 = bench / "cells" / "pad" / "seed0"
    shutil.copytree(out, seed0)
    weights = [(seed0 / f"phase{k}" / "model.safetensors").stat().st_mtime_ns for k in (1, 2, 3)]
    bench_cmd = ["--threads", "1", "bench", "pad", *opts, "--seeds", "2", "--out", str(bench), "--store", "none"]
    assert main(bench_cmd) == 0
    assert "2 cells run, 0 reused, 0 failed" in capsys.readouterr().out
    assert [(seed0 / f"phase{k}" / "model.safetensors").stat().st_mtime_ns for k in (1, 2, 3)] == weights
    with open(seed0 / "results.csv") as fh:
        assert list(csv.DictReader(fh)) == rows
    md = (bench / "results.md").read_text()
    assert "± " in md and "| pad |" in md and "| sasrec-bce |" in md and "phase2" in md
    runs = {k: json.loads((bench / "cells" / "pad" / f"seed{k}" / "run.json").read_text()) for k in (0, 1)}
    for k in (0, 1):  # each seed's epochs per phase, from its run.json
        for phase in ("1", "2", "3"):
            ph = runs[k]["phases"][phase]
            assert f"| {phase} | {k} | {ph['epochs_run']} | {ph['best_epoch']} | {ph['best_val']:.4f} |" in md
    gates = [line for line in md.splitlines() if line.startswith(("| ID |", "| aligned |", "| text |"))]
    weights = [[float(x) for x in line.strip("| ").split("|")[1:]] for line in gates]
    assert len(weights) == 3 and all(abs(sum(b) - 1) < 2e-3 for b in zip(*weights))  # the gates of a bin sum to 1
    with open(bench / "results.csv") as fh:
        assert {r["seed"] for r in csv.DictReader(fh)} == {"0", "1"}
    # a re-run reuses both cells
    monkeypatch.setattr(pad_task, "run", lambda *a, **k: pytest.fail("a finished cell ran again"))
    assert main(bench_cmd) == 0
    assert "0 cells run, 2 reused, 0 failed" in capsys.readouterr().out
    assert (bench / "results.md").read_text() == md
    # a bad option is a one-line error naming it
    capsys.readouterr()
    assert main(cmd + ["--set", "model.hiden_size=8"]) == 2
    err = capsys.readouterr().err
    assert "hiden_size" in err and len(err.strip().splitlines()) == 1


def test_phase3_options_keep_phases_1_and_2_reusable(planted_text) -> None:  # noqa: ANN001
    from recwise.models.seq.pad import PADConfig
    from recwise.tasks.pad.protocol import PADTrainConfig, phase_fingerprints

    seqs, _ = planted_text
    cell, text = PADRun("planted", 0), PADTextConfig(**HASH)

    def fps(train: dict, model: dict) -> dict[int, str]:
        return phase_fingerprints(cell, seqs, PADTrainConfig(**train), PADConfig(**(TINY | model)), text)

    base = fps({}, {})
    for train, model in (({"gate_lr": 1e-2}, {}), ({}, {"gate_init": "uniform"}), ({}, {"gamma2": -2.0}),
                         ({"lr3": 1e-3}, {})):
        other = fps(train, model)
        assert other[1] == base[1] and other[2] == base[2] and other[3] != base[3], (train, model)
    assert fps({"lr2": 1e-3}, {})[1] == base[1] and fps({"lr2": 1e-3}, {})[2] != base[2]
    assert fps({}, {"hidden_size": 32})[1] != base[1]


def test_gate_lr_sets_the_gates_parameter_group(planted_text) -> None:  # noqa: ANN001
    from recwise.data.sequence import seq_schema
    from recwise.models.seq.pad import PADConfig

    seqs, _ = planted_text
    m = PADPhase3(seq_schema(seqs.n_items), PADConfig(**TINY), torch.randn(seqs.n_items + 1, 8),
                  torch.randint(1, 11, (seqs.n_items + 1,)))
    released, own = m.param_groups(1e-4, 0.1), m.param_groups(1e-4, 0.1, 1e-2)
    assert released[0]["params"] == [m.gate] and released[0]["lr"] == 1e-4 and released[0]["weight_decay"] == 0.01
    assert own[0]["lr"] == 1e-2 and own[1]["lr"] == 1e-4 and all(p is not m.gate for p in own[1]["params"])
