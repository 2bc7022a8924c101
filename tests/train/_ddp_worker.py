"""What each process of the 2-process DDP test runs (spawned; importable by module path)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recwise.data.cache import Prepared
from recwise.data.schema import Schema
from recwise.data.split import random_split
from recwise.data.table import Batch, TableStream
from recwise.tasks.msr import MSRRun, bce_loss, evaluate, run
from recwise.train import TrainConfig, Trainer, seed_everything
from recwise.train.trainer import init_distributed
from tests.conftest import planted_table

TINY_BATCH = 251  # odd: the two processes get 126 and 125 rows, so the uneven-share weighting is used


class Tiny(nn.Module):
    """Embeddings summed to a logit plus a linear dense term: no BatchNorm, no dropout, so one process
    and two give the same gradients up to float rounding."""

    def __init__(self, schema: Schema) -> None:
        super().__init__()
        self.emb = nn.ModuleList(nn.Embedding(f.vocab_size, 1) for f in schema.sparse)
        self.dense = nn.Linear(len(schema.dense), 1)
        self.scen = nn.Embedding(schema.num_scenarios, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        x = sum(e(batch["sparse"][:, j]) for j, e in enumerate(self.emb)) + self.dense(batch["dense"])
        return (x + self.scen(batch["scenario"])).squeeze(1)

    def extra_loss(self) -> None:
        return None


def planted() -> Prepared:
    t = planted_table()
    return Prepared(t, random_split(len(t), seed=1), {"key": "planted"})


def fit_tiny(data: Prepared, source: str) -> dict[str, torch.Tensor]:
    seed_everything(3)
    model = Tiny(data.table.schema)
    val = data.part("val").tensors()
    cfg = TrainConfig(epochs=2, batch_size=TINY_BATCH, lr=1e-2, patience=10, seed=3, device="cpu")
    trainer = Trainer(model, cfg, loss_fn=bce_loss, monitor=lambda m: evaluate(m, val, 3, 4096)["all"]["auc"],
                      progress=False)
    train = (data.part("train").tensors() if source == "memory"
             else TableStream(data.table, data.splits["train"], shuffle="rows"))
    trainer.fit(train)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


MSR_TRAIN = {"epochs": 3, "batch_size": 256, "lr": 1e-2}


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    out_dir = Path(out)
    writes: list[str] = []
    import recwise.tasks.msr.protocol as msr
    import recwise.train.trainer as trainer_mod

    def counting(name: str, fn: Any) -> Any:
        def wrapped(*args: Any, **kw: Any) -> Any:
            writes.append(name)
            return fn(*args, **kw)
        return wrapped

    for mod, name in ((msr, "atomic_write_text"), (msr, "write_results"), (msr, "save_model"),
                      (trainer_mod, "save_training_state")):
        setattr(mod, name, counting(name, getattr(mod, name)))

    created = init_distributed("cpu")
    try:
        data = planted()
        tiny = {src: fit_tiny(data, src) for src in ("memory", "stream")}
        rows = run(MSRRun("planted", "mmoe", 0), data, train_options=MSR_TRAIN, out_dir=out_dir / "run",
                   progress=False)
    finally:
        if created:
            torch.distributed.destroy_process_group()
    torch.save(tiny, out_dir / f"tiny{rank}.pt")
    (out_dir / f"rank{rank}.json").write_text(json.dumps({
        "writes": writes, "rows": [[r.split, r.segment, r.metric, r.value] for r in rows]}))


def test_auc(rows: list[list[Any]]) -> float:
    return float(next(v for s, g, m, v in rows if (s, g, m) == ("test", "all", "auc")))


__all__ = ["MSR_TRAIN", "fit_tiny", "planted", "test_auc", "worker", "np"]
