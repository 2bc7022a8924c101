"""Same seed, same numbers at any thread count: every msr, sequential and ctr model trained a few
steps on real MovieLens-100K rows inside ``deterministic()`` ends with bit-identical weights and
eval outputs whether torch had 1 or 2 threads before; the mode restores what it changed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from recwise.data.cache import Prepared
from recwise.data.sequence import Sequences, eval_inputs, make_examples, seq_schema
from recwise.registry import get_model, list_models
from recwise.train import DETERMINISTIC_THREADS, TrainConfig, Trainer, determinism_info, deterministic, predict

STEPS, BATCH = 3, 32  # three optimizer steps on 96 rows
CFG = TrainConfig(epochs=1, batch_size=BATCH, eval_batch_size=BATCH, seed=0, device="cpu")


def _bce(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(model(batch), batch["label"])
    extra = model.extra_loss() if hasattr(model, "extra_loss") else None
    return loss + extra if extra is not None else loss


def _seq_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy over all items at the last position, at every position, or the model's cloze loss."""
    if "target" in batch:
        return F.cross_entropy(model(batch), batch["target"])
    if "target_seq" in batch:
        m = batch["target_seq"] > 0
        return F.cross_entropy(model.score(model.encode(batch)[m]), batch["target_seq"][m])
    return model.cloze_loss(batch)


def _fit(model: nn.Module, loss_fn, train: dict[str, torch.Tensor], test: dict[str, torch.Tensor],  # noqa: ANN001
         threads: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Fit one epoch of STEPS batches inside deterministic(), torch at ``threads`` before; (weights, eval outputs)."""
    torch.set_num_threads(threads)
    with deterministic():
        assert torch.get_num_threads() == DETERMINISTIC_THREADS
        result = Trainer(model, CFG, loss_fn=loss_fn, monitor=lambda m: 0.0, progress=False).fit(train)
        assert result.history[0]["train_samples"] == STEPS * BATCH
        out = predict(model, test, batch_size=BATCH)
    assert torch.get_num_threads() == threads
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, out


def _assert_bitwise(name: str, runs: list[tuple[dict[str, torch.Tensor], np.ndarray]]) -> None:
    (w1, o1), (w2, o2) = runs
    assert w1.keys() == w2.keys()
    differ = [k for k in w1 if not torch.equal(w1[k], w2[k])]
    assert not differ, f"{name}: weights differ between 1 and 2 threads: {differ[:5]}"
    assert o1.tobytes() == o2.tobytes(), f"{name}: eval outputs differ between 1 and 2 threads"
    assert np.isfinite(o1).all()


@pytest.fixture(scope="module")
def ctr_rows(ml100k: Prepared) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    rng = np.random.default_rng(0)
    train, test = ml100k.part("train").tensors(), ml100k.part("test").tensors()
    pick = torch.from_numpy(rng.choice(len(train["label"]), STEPS * BATCH, replace=False))
    return {k: v[pick] for k, v in train.items()}, {k: v[:64] for k, v in test.items()}


@pytest.mark.parametrize(("task", "name"), [(t, m) for t in ("msr", "ctr") for m in list_models(t)])
def test_ctr_models_do_not_depend_on_threads(task: str, name: str, ml100k: Prepared, ctr_rows) -> None:  # noqa: ANN001
    train, test = ctr_rows
    cls = get_model(task, name)
    runs = []
    for threads in (1, 2):
        torch.manual_seed(0)
        runs.append(_fit(cls(ml100k.table.schema, cls.Config()), _bce, train, test, threads))
    _assert_bitwise(f"{task}/{name}", runs)


@pytest.fixture(scope="module")
def ml100k_seq(ml100k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Sequences:
    from recwise.data.seq_datasets import load_sequences

    seqs, _ = load_sequences("ml-100k", ml100k_dir, root=tmp_path_factory.mktemp("rwhome"))
    return seqs


@pytest.mark.parametrize("name", list_models("sequential"))
def test_sequential_models_do_not_depend_on_threads(name: str, ml100k_seq: Sequences) -> None:
    cls = get_model("sequential", name)
    config = cls.Config()
    max_len = getattr(config, "max_len", 50)
    rng = np.random.default_rng(0)
    ex = make_examples(ml100k_seq, cls.examples[0], max_len, "right")
    pick = torch.from_numpy(rng.choice(len(ex["item_seq"]), STEPS * BATCH, replace=False))
    train = {k: v[pick] for k, v in ex.items()}
    test = {k: v[:32] for k, v in eval_inputs(ml100k_seq, "test", max_len).items()}
    runs = []
    for threads in (1, 2):
        torch.manual_seed(0)
        runs.append(_fit(cls(seq_schema(ml100k_seq.n_items), config), _seq_loss, train, test, threads))
    _assert_bitwise(f"sequential/{name}", runs)


def test_mode_restores_threads_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.set_num_threads(2)
    before = determinism_info()
    assert not before["deterministic"] and not before["deterministic_algorithms"]
    with deterministic(False):  # disabled: nothing changes
        assert determinism_info() == before
    with deterministic():
        inside = determinism_info()
        assert inside["deterministic"] and inside["deterministic_algorithms"] and not inside["warn_only"]
        assert inside["threads"] == 1 and inside["cudnn_deterministic"] and not inside["cudnn_benchmark"]
        assert inside["numba_threads"] in (None, 1)
        assert (inside["cublas_workspace_config"] is not None) == torch.cuda.is_available()
        with deterministic():  # nested: the outer block is still on after the inner one
            pass
        assert determinism_info()["deterministic"] and torch.get_num_threads() == 1
    after = determinism_info()
    assert {k: v for k, v in after.items() if k != "numba_threads"} == \
        {k: v for k, v in before.items() if k != "numba_threads"}
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    # an exception inside the block restores too, and warn_only set before is kept
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with pytest.raises(RuntimeError, match="boom"), deterministic():
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
            raise RuntimeError("boom")
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.get_num_threads() == 2
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(int(os.environ.get("RECWISE_TEST_THREADS", "1")))
