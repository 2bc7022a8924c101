"""Seconds per training step and per epoch of the sequential models on CPU (SIGMA vs Mamba4Rec vs SASRec).

For each model: its training examples on MovieLens-100K (``--examples auto``: the model's default,
``prefix`` for SIGMA, ``sequence`` for SASRec / Mamba4Rec; or one construction for all), batches of
the task's default size (2048 prefixes or 32 windows) unless ``--batch`` is given, ``--steps`` timed
optimiser steps (forward, CE loss, backward, Adam) after one warm-up step, each step's wall time
and this process's CPU time (which a loaded shared machine inflates less). A full epoch is
extrapolated as steps per epoch x median step time; the ratio column is each model's s/epoch over
SASRec's. Falls back to random sequences of ML-100K's shape when the dataset is absent.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/seq_step.py                       # defaults
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/seq_step.py --examples prefix --batch 256
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/seq_step.py --models sigma --scan parallel --steps 1
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time

import numpy as np
import torch


def load(max_len: int):  # noqa: ANN201
    from recwise.data.sequence import Sequences

    try:
        from recwise.data.seq_datasets import load_sequences

        seqs, _ = load_sequences("ml-100k", None)
        return seqs, "ml-100k"
    except Exception as exc:  # noqa: BLE001 - no raw files here: same shape, random items
        print(f"(ML-100K not available: {exc}; random sequences of its shape)")
        rng = np.random.default_rng(0)
        lens = rng.integers(20, 300, 943)
        items = rng.integers(1, 1683, int(lens.sum()))
        offsets = np.concatenate([[0], np.cumsum(lens)])
        return Sequences(items=items, offsets=offsets, n_items=1682), "random"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="sasrec,mamba4rec,sigma")
    ap.add_argument("--examples", default="auto", choices=("auto", "prefix", "sequence"))
    ap.add_argument("--batch", type=int, default=0, help="0: the task's default for the construction")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scan", default="auto", help="Mamba scan for mamba4rec/sigma: auto, numba, parallel")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from recwise.data.sequence import make_examples, seq_schema
    from recwise.registry import get_model
    from recwise.tasks.sequential import seq_loss
    from recwise.train.presets import sequential_train_defaults as train_defaults

    seqs, source = load(50)
    rows = []
    print(f"{source}, {args.threads} thread(s), median of {args.steps} steps after 1 warm-up")
    print(f"{'model':<10} {'examples':<9} {'batch':>6} {'steps/ep':>8} {'wall s/step':>11} {'cpu s/step':>10} "
          f"{'wall s/epoch':>12} {'cpu s/epoch':>11} {'vs sasrec (cpu)':>15}")
    base = None
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        cls = get_model("sequential", name)
        kind = cls.examples[0] if args.examples == "auto" else args.examples
        data = make_examples(seqs, kind, 50, "right")
        n = len(data["item_seq"])
        bs = args.batch or train_defaults(kind)["batch_size"]
        opts = {"scan": args.scan} if "scan" in cls.Config.__dataclass_fields__ else {}
        torch.manual_seed(0)
        model = cls(seq_schema(seqs.n_items), cls.Config(**opts))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        perm = torch.randperm(n)
        walls, cpus = [], []
        for i in range(args.steps + 1):
            idx = perm[(i * bs) % n:][:bs]
            batch = {k: torch.as_tensor(v)[idx] for k, v in data.items()}
            w0, c0 = time.perf_counter(), time.process_time()
            loss = seq_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
        steps = math.ceil(n / bs)
        w, c = statistics.median(walls), statistics.median(cpus)
        if base is None and name == "sasrec":
            base = c * steps
        ratio = f"{c * steps / base:>14.1f}x" if base else f"{'-':>15}"
        print(f"{name:<10} {kind:<9} {bs:>6} {steps:>8} {w:>11.3f} {c:>10.3f} {w * steps:>12.1f} {c * steps:>11.1f} "
              f"{ratio}", flush=True)
        rows.append({"model": name, "examples": kind, "batch": bs, "n_examples": n, "steps_per_epoch": steps,
                     "wall_s_per_step": w, "cpu_s_per_step": c, "wall_s_per_epoch": w * steps,
                     "cpu_s_per_epoch": c * steps})
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "source": source, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
