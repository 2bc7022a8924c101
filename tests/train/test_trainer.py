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


class _TinyBN(torch.nn.Module):
    """Inputs at a 1e-3 scale through BatchNorm: the running variance starts at 1, the data's is ~1e-6."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(4, 3)
        self.bn = torch.nn.BatchNorm1d(3)
        self.out = torch.nn.Linear(3, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.out(self.bn(self.w(batch["x"]) * 1e-3)).squeeze(1)


def _tiny_fit(precise_bn: int) -> tuple[_TinyBN, dict[str, torch.Tensor]]:
    seed_everything(0)
    x = torch.randn(512, 4)
    train = {"x": x, "label": (x[:, 0] > 0).float()}
    model = _TinyBN()

    def loss(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(m(b), b["label"])

    cfg = TrainConfig(epochs=1, batch_size=128, lr=1e-2, seed=0, precise_bn=precise_bn)
    Trainer(model, cfg, loss_fn=loss, monitor=lambda m: 0.0, progress=False).fit(train)
    return model, train


def test_precise_bn_sets_running_statistics_to_the_trained_models_batch_statistics() -> None:
    released, _ = _tiny_fit(0)
    precise, train = _tiny_fit(4)  # all 4 batches of the one epoch
    with torch.no_grad():
        h = precise.w(train["x"]) * 1e-3
    data_var = h.var(0)  # the shuffled batches' mean variance is this within a few percent
    # 4 momentum-0.1 updates keep 0.9^4 = 66% of the initial variance 1; PreciseBN has the data's
    assert released.bn.running_var.min() > 0.5
    torch.testing.assert_close(precise.bn.running_var, data_var, rtol=0.1, atol=0)
    assert precise.bn.momentum == 0.1  # restored after the recomputation
    # the same weights: PreciseBN changes the statistics only, not the training
    torch.testing.assert_close(precise.w.weight, released.w.weight)


def test_precise_bn_must_not_be_negative() -> None:
    with pytest.raises(Exception, match="train.precise_bn"):
        TrainConfig(precise_bn=-1)


def test_checkpoints_and_saved_models_get_the_usual_modes_not_0600(planted: Prepared, tmp_path: Path) -> None:
    # safetensors writes 0600 files and mkdtemp makes 0700 folders; a checkpoint or model shared on a
    # cluster's filesystem must be readable as any file the user writes (umask 022 here: 0644 / 0755)
    import os

    from recwise.train import save_model

    t = _trainer(planted, tmp_path / "run", epochs=1)
    t.fit(planted.part("train").tensors())
    save_model(tmp_path / "run" / "model", t.model)
    paths = [tmp_path / "run" / "checkpoint", *(tmp_path / "run" / "checkpoint").iterdir(),
             tmp_path / "run" / "model.safetensors", tmp_path / "run" / "model.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert mask == 0o022
    modes = {p.name: p.stat().st_mode & 0o777 for p in paths}
    assert modes == {p.name: 0o755 if p.is_dir() else 0o644 for p in paths}
    assert "best.safetensors" in modes and "optimizer.safetensors" in modes
