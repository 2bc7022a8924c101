"""Peer side of msr_throughput.py: torch-rechub 0.9.0's MMOE on rows exported by recwise.

Runs in torch-rechub's own virtual environment (benchmarks/.venvs/torch-rechub), never imports
recwise, and prints one JSON object on its last stdout line. Measured, in this order, each on a
fresh model built from fresh feature objects with the same init seed:

* ``pandas``: ``DataGenerator(DataFrame, y)`` + ``CTRTrainer``, Scenario-Wise Rec's path (each
  sample is ``{col: Series[i]}``, collated row by row);
* ``numpy``: ``DataGenerator({col: ndarray}, y)`` + ``CTRTrainer``, torch-rechub's fast path;
* ``bare`` (optional): the same nn.Module driven by a hand loop over pre-built tensor slices;
* ``numpy_scen`` / ``bare_scen`` (optional): as ``numpy`` / ``bare`` but with recwise's (and
  Scenario-Wise Rec's) heads: MMOE with one gate and tower per scenario (``n_task`` = number of
  scenarios), each row taking its own scenario's output.

Train time is the sum of the ``train_one_epoch`` calls (timed by wrapping the bound method),
so validation is excluded. Test AUC comes from ``CTRTrainer.evaluate`` on the test loader.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help=".npz written by msr_throughput.py")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2022)
    ap.add_argument("--embed-dim", type=int, default=16)
    ap.add_argument("--modes", default="pandas,numpy,bare,numpy_scen,bare_scen")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import pandas as pd
    import torch_rechub
    from sklearn.metrics import roc_auc_score
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE
    from torch_rechub.trainers import CTRTrainer
    from torch_rechub.utils.data import DataGenerator

    z = np.load(args.data, allow_pickle=False)
    sparse = [str(s) for s in z["sparse_names"]]
    dense = [str(s) for s in z["dense_names"]]
    vocab = {n: int(v) for n, v in zip(sparse, z["vocab"])}
    cols = sparse + dense

    def split(name: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        x = {c: z[f"{name}/{c}"] for c in cols}
        x["scenario"] = z[f"{name}/scenario"]  # not a model feature; read only by the per-scenario heads
        y = z[f"{name}/label"].astype(np.float32).reshape(-1, 1)  # MMOE returns (B, n_task)
        return x, y

    data = {s: split(s) for s in ("train", "val", "test")}

    def inputs(x: dict[str, np.ndarray], per_scenario: bool) -> dict[str, np.ndarray]:
        """The columns fed: the features, plus ``scenario`` only for the per-scenario heads."""
        return x if per_scenario else {c: x[c] for c in cols}

    n_scen = int(z["n_scenarios"])

    class PerScenario(torch.nn.Module):
        """MMOE with one task per scenario; each row keeps its own scenario's probability."""

        def __init__(self, mmoe: torch.nn.Module) -> None:
            super().__init__()
            self.mmoe = mmoe

        def forward(self, x: dict) -> torch.Tensor:
            return self.mmoe(x).gather(1, x["scenario"].long().view(-1, 1))

    def build(per_scenario: bool = False) -> torch.nn.Module:
        # New feature objects every time: SparseFeature caches its nn.Embedding on itself.
        torch.manual_seed(args.seed)
        feats = [SparseFeature(n, vocab_size=vocab[n], embed_dim=args.embed_dim) for n in sparse]
        feats += [DenseFeature(n) for n in dense]
        n_task = n_scen if per_scenario else 1
        model = MMOE(feats, ["classification"] * n_task, n_expert=3, expert_params={"dims": [16]},
                     tower_params_list=[{"dims": [8]}] * n_task)
        return PerScenario(model) if per_scenario else model

    # Warm-up (allocator, MKL/oneDNN init) on a throwaway model, so the first measured mode is not
    # charged for the process's cold start.
    warm = build()
    wopt = torch.optim.Adam(warm.parameters())
    tensors = lambda x: {c: torch.from_numpy(np.ascontiguousarray(v)) for c, v in x.items()}  # noqa: E731
    xw = tensors({c: v[: args.batch_size] for c, v in inputs(data["train"][0], False).items()})
    for _ in range(3):
        wl = torch.nn.functional.binary_cross_entropy(warm(xw), torch.from_numpy(data["train"][1][: args.batch_size]))
        wopt.zero_grad()
        wl.backward()
        wopt.step()
    del warm, wopt

    out: dict[str, object] = {
        "torch_rechub": getattr(torch_rechub, "__version__", "0.9.0"), "torch": torch.__version__,
        "pandas": pd.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
        "rows": {s: len(data[s][1]) for s in data},
    }
    n_train = len(data["train"][1])
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        per_scenario = mode.endswith("_scen")
        if mode in ("pandas", "numpy", "numpy_scen"):
            def feed(x: dict[str, np.ndarray]) -> object:
                x = inputs(x, per_scenario)  # noqa: B023 - feed is used within this iteration
                # fresh 0..n-1 index: TorchDataset does Series[i] label lookups
                return pd.DataFrame(x) if mode == "pandas" else x  # noqa: B023

            model = build(per_scenario)
            torch.manual_seed(args.seed)  # the DataLoader's shuffle draws from the global RNG
            (xtr, ytr), (xva, yva), (xte, yte) = data["train"], data["val"], data["test"]
            train_dl, val_dl, test_dl = DataGenerator(feed(xtr), ytr).generate_dataloader(
                x_val=feed(xva), y_val=yva, x_test=feed(xte), y_test=yte, batch_size=args.batch_size, num_workers=0)
            with tempfile.TemporaryDirectory() as tmp:
                trainer = CTRTrainer(model, optimizer_params={"lr": 1e-3, "weight_decay": 1e-5}, n_epoch=args.epochs,
                                     earlystop_patience=args.epochs + 1, device="cpu", model_path=tmp)
                epoch_s: list[float] = []
                inner = trainer.train_one_epoch

                def timed(*a: Any, _inner: Any = inner, _acc: list[float] = epoch_s, **k: Any) -> Any:
                    t0 = time.perf_counter()
                    try:
                        return _inner(*a, **k)
                    finally:
                        _acc.append(time.perf_counter() - t0)

                trainer.train_one_epoch = timed
                t0 = time.perf_counter()
                trainer.fit(train_dl, val_dl)
                wall = time.perf_counter() - t0
                test_auc = float(trainer.evaluate(trainer.model, test_dl))
        elif mode in ("bare", "bare_scen"):
            model = build(per_scenario)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
            xtr = tensors(inputs(data["train"][0], per_scenario))
            ytr = torch.from_numpy(data["train"][1])
            loss_fn = torch.nn.BCELoss()
            torch.manual_seed(args.seed)
            epoch_s = []
            t_all = time.perf_counter()
            for _ in range(args.epochs):
                model.train()
                t0 = time.perf_counter()
                perm = torch.randperm(n_train)
                for s in range(0, n_train, args.batch_size):
                    idx = perm[s : s + args.batch_size]
                    loss = loss_fn(model({c: v.index_select(0, idx) for c, v in xtr.items()}), ytr.index_select(0, idx))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                epoch_s.append(time.perf_counter() - t0)
            wall = time.perf_counter() - t_all
            model.eval()
            with torch.no_grad():
                xte = tensors(inputs(data["test"][0], per_scenario))
                prob = model(xte).numpy().ravel()
            test_auc = float(roc_auc_score(data["test"][1].ravel(), prob))
        else:
            raise SystemExit(f"unknown mode {mode!r}; use pandas, numpy, bare, numpy_scen, bare_scen")
        train_s = float(sum(epoch_s))
        out[mode] = {"train_seconds": train_s, "epoch_seconds": epoch_s, "wall_seconds": wall,
                     "samples_per_second": n_train * len(epoch_s) / max(train_s, 1e-9), "test_auc": test_auc,
                     "epochs": len(epoch_s)}
        print(f"[peer] {mode}: {out[mode]['samples_per_second']:,.0f} samples/s, test AUC {test_auc:.4f}",
              file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
