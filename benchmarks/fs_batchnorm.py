"""Why FiBiNET collapsed on MovieLens-100K under ERASE's protocol, epoch by epoch.

FiBiNET (all 10 fields, seed 0, ERASE's training: Adam 1e-3, batch 4096, 18 batches an epoch) is
trained for ``--epochs`` epochs without early stopping. After each epoch the script prints the
validation AUC and logloss of the eval-mode model as trained with PyTorch's momentum-0.1
BatchNorm averages (what ERASE releases, ``train.precise_bn=0``), the same weights with the
statistics recomputed over the training data (PreciseBN, what recwise's ERASE protocol does
now), and the running variance of the two BatchNorm layers of the MLP. The first one's inputs are
products of N(0, 0.01) embeddings: their variance is near 1e-9, while the momentum average starts
at 1 and loses only 10% of that a step.

    .venv/bin/python benchmarks/fs_batchnorm.py --epochs 16
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace

import numpy as np
import torch

from recwise.data.datasets.fs_tables import prepare_fs
from recwise.metrics import auc, logloss
from recwise.models.ctr.fibinet import FiBiNET, FiBiNETConfig
from recwise.select import ERASE_TRAIN
from recwise.select.base import bce_loss
from recwise.train import Trainer, predict, seed_everything
from recwise.train.trainer import recompute_batchnorm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = prepare_fs(args.dataset)
    train, val = data.part("train").tensors(), data.part("val").tensors()
    y = val["label"].numpy()

    def metrics(m: torch.nn.Module) -> tuple[float, float]:
        prob = 1 / (1 + np.exp(-predict(m, val, 16384).astype(np.float64)))
        return auc(y, prob), logloss(y, prob)

    def batches(bs: int = ERASE_TRAIN.batch_size):  # noqa: ANN202 - the training rows in order
        n = len(train["label"])
        return ({k: v[s:s + bs] for k, v in train.items()} for s in range(0, n, bs))

    print(f"{'epoch':>5} | {'released BN: val AUC':>20} {'logloss':>8} | {'PreciseBN: val AUC':>18} {'logloss':>8} | "
          f"running var (released) of BN 1, BN 2")

    def monitor(m: torch.nn.Module) -> float:
        released = metrics(m)
        precise = copy.deepcopy(m)
        recompute_batchnorm(precise, batches(), 10**9)
        precise.eval()
        fixed = metrics(precise)
        var = [float(torch.as_tensor(b.running_var).mean()) for b in m.modules() if isinstance(b, torch.nn.BatchNorm1d)]
        monitor.epoch += 1  # type: ignore[attr-defined]
        print(f"{monitor.epoch:>5} | {released[0]:>20.4f} {released[1]:>8.4f} | {fixed[0]:>18.4f} "  # type: ignore[attr-defined]
              f"{fixed[1]:>8.4f} | {var[0]:.1e}, {var[1]:.1e}", flush=True)
        return released[0]

    monitor.epoch = 0  # type: ignore[attr-defined]
    seed_everything(args.seed)
    model = FiBiNET(data.part("train").schema, FiBiNETConfig())
    cfg = replace(ERASE_TRAIN, epochs=args.epochs, patience=args.epochs + 1, seed=args.seed, precise_bn=0)
    Trainer(model, cfg, loss_fn=bce_loss, monitor=monitor, progress=False).fit(train)


if __name__ == "__main__":
    main()
