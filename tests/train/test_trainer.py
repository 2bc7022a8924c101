from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recwise.data.cache import Prepared
from recwise.errors import CheckpointError
from recwise.registry import get_model
from recwise.tasks.msr import bce_loss, evaluate
from recwise.train import TrainConfig, Trainer, seed_everything


class Killed(Exception):  # noqa: N818 - a simulated kill, not an error
    pass


def _trainer(planted: Prepared, run_dir: Path | None, kill_at: int | None = None, epochs: int = 6) -> Trainer:
    seed_everything(3)
    cls = get_model("msr", "mmoe")
    model = cls(planted.table.schema, cls.Config(dropout=0.1))  # dropout: the RNG state must be restored too
    val = planted.part("val").tensors()
    calls = {"n": 0}

    def monitor(m: torch.nn.Module) -> float:
        calls["n"] += 1
        if kill_at is not None and calls["n"] == kill_at:
            raise Killed
        return evaluate(m, val, 3, 4096)["all"]["auc"]

    cfg = TrainConfig(epochs=epochs, batch_size=256, lr=1e-2, patience=10, seed=3)
    return Trainer(model, cfg, loss_fn=bce_loss, monitor=monitor, run_dir=run_dir, progress=False)


def test_resume_after_a_kill_gives_the_same_numbers(planted: Prepared, tmp_path: Path) -> None:
    train = planted.part("train").tensors()
    full = _trainer(planted, None)
    ref = full.fit(train)

    with pytest.raises(Killed):  # killed while validating epoch 4: epochs 0-2 are checkpointed
        _trainer(planted, tmp_path, kill_at=4).fit(train)
    resumed_trainer = _trainer(planted, tmp_path)
    resumed = resumed_trainer.fit(train, resume=True)

    assert [h["val"] for h in resumed.history] == [h["val"] for h in ref.history]
    assert resumed.best_epoch == ref.best_epoch
    for (k, a), b in zip(full.model.state_dict().items(), resumed_trainer.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_best_weights_are_restored_even_without_early_stop(planted: Prepared) -> None:
    train = planted.part("train").tensors()
    val = planted.part("val").tensors()
    t = _trainer(planted, None, epochs=5)
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.8])  # best at epoch 1; the budget ends before patience
    snapshots = []
    t.monitor = lambda m: (snapshots.append({k: v.clone() for k, v in m.state_dict().items()}), next(scores))[1]
    res = t.fit(train)
    assert res.best_epoch == 1 and not res.stopped_early
    for k, v in t.model.state_dict().items():
        assert torch.equal(v, snapshots[1][k]), k
    assert np.isfinite(evaluate(t.model, val, 3, 4096)["all"]["auc"])


def test_early_stopping_after_patience(planted: Prepared) -> None:
    train = planted.part("train").tensors()
    t = _trainer(planted, None, epochs=20)
    t.config = TrainConfig(epochs=20, batch_size=256, patience=2)
    scores = iter([0.5, 0.6, 0.6, 0.55] + [0.9] * 20)  # 0.6 is not a strict improvement
    t.monitor = lambda m: next(scores)
    res = t.fit(train)
    assert res.stopped_early and res.epochs_run == 4 and res.best_epoch == 1


def test_resume_refuses_other_options_and_missing_checkpoints(planted: Prepared, tmp_path: Path) -> None:
    train = planted.part("train").tensors()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _trainer(planted, tmp_path).fit(train, resume=True)
    _trainer(planted, tmp_path, epochs=2).fit(train)
    with pytest.raises(CheckpointError, match="other options"):
        _trainer(planted, tmp_path, epochs=3).fit(train, resume=True)
    (tmp_path / "checkpoint" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="corrupt"):
        _trainer(planted, tmp_path, epochs=2).fit(train, resume=True)


def test_same_seed_same_numbers(planted: Prepared) -> None:
    train = planted.part("train").tensors()
    a = _trainer(planted, None, epochs=2).fit(train)
    b = _trainer(planted, None, epochs=2).fit(train)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


@pytest.mark.parametrize("flush", [True, False])
def test_subnormals_flushed_only_while_fitting_and_only_when_asked(planted: Prepared, flush: bool) -> None:
    train = planted.part("train").tensors()
    tiny = torch.tensor([1e-39])  # subnormal in float32
    doubled = float((tiny * 2)[0])
    assert doubled > 0.0
    seen = []
    t = _trainer(planted, None, epochs=2)
    t.config = TrainConfig(epochs=2, batch_size=256, patience=5, flush_denormal=flush)
    t.monitor = lambda m: (seen.append(float((tiny * 2)[0])), 0.5)[1]
    t.fit(train)
    assert seen == ([0.0, 0.0] if flush else [doubled, doubled])
    assert float((tiny * 2)[0]) == doubled  # restored after fit
