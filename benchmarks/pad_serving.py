"""PAD's serving cost vs its SASRec backbone: scoring latency per user, no LLM in the path.

Loads a finished ``recwise run pad`` folder or ``recwise bench pad`` cell (``<out>/cells/pad/seed<k>``):
``run.json``, ``phase1/`` and ``phase3/`` weights, the cached phase-0 text matrix. Builds the backbone
(phase 1, ``sasrec-bce``) and PAD (phase 3) and times full-ranking scores for the test users: per
user (batch 1, median over ``--users``) and per batch of ``--batch`` users. PAD's item tables (ID,
aligned = CAT(id, T(text)), text-only = T3(text)) are fixed after training and computed once
(``cache_tables``); the cost per request is three SASRec towers and three dot products against
(V, d) tables, versus one for the backbone.

    .venv/bin/python benchmarks/pad_serving.py runs/pad-ml-100k/seed0 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from recwise.config import config_from_dict
from recwise.data.seq_datasets import load_sequences
from recwise.data.sequence import eval_inputs, seq_schema
from recwise.metrics.sequential import popularity_bins, train_item_counts
from recwise.models.seq.pad import PADConfig, PADPhase1, PADPhase3
from recwise.train.checkpoint import _load_state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--users", type=int, default=200, help="users timed one by one")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = json.loads((args.run_dir / "run.json").read_text())
    seqs, _ = load_sequences(info["dataset"], args.data_dir)
    mcfg = config_from_dict(PADConfig, info["model_config"])
    text = torch.from_numpy(np.load(info["phases"]["0"]["path"]))
    bins = torch.from_numpy(popularity_bins(train_item_counts(seqs), mcfg.n_bins))
    schema = seq_schema(seqs.n_items)
    backbone = PADPhase1(schema, mcfg)
    _load_state(backbone, load_file(str(args.run_dir / "phase1" / "model.safetensors")), args.run_dir)
    pad = PADPhase3(schema, mcfg, text, bins)
    _load_state(pad, load_file(str(args.run_dir / "phase3" / "model.safetensors")), args.run_dir)
    test = eval_inputs(seqs, "test", mcfg.max_len, "left")
    models = {"sasrec-bce": backbone, "pad": pad}
    for model in models.values():
        model.cache_tables()
    one: dict[str, list[float]] = {n: [] for n in models}
    many: dict[str, list[float]] = {n: [] for n in models}
    batch = {k: v[: args.batch] for k, v in test.items()}
    with torch.no_grad():
        for model in models.values():
            model({k: v[:2] for k, v in test.items()})  # warm-up
        # interleaved, so that the load of a shared machine hits both sides alike
        for u in range(min(args.users, len(test["target"]))):
            b = {k: v[u : u + 1] for k, v in test.items()}
            for name, model in models.items():
                t0 = time.perf_counter()
                model(b)
                one[name].append(time.perf_counter() - t0)
        for _ in range(args.repeats):
            for name, model in models.items():
                t0 = time.perf_counter()
                model(batch)
                many[name].append(time.perf_counter() - t0)
    out = {name: {"ms_per_user_batch1": 1e3 * statistics.median(one[name]),
                  "ms_per_user_batched": 1e3 * statistics.median(many[name]) / len(batch["target"]),
                  "parameters": sum(p.numel() for p in model.parameters())} for name, model in models.items()}
    for name, r in out.items():
        print(f"{name:<11} batch 1: {r['ms_per_user_batch1']:.2f} ms/user   batch {args.batch}: "
              f"{r['ms_per_user_batched']:.3f} ms/user   {r['parameters']:,} parameters")
    print(f"PAD / backbone: {out['pad']['ms_per_user_batch1'] / out['sasrec-bce']['ms_per_user_batch1']:.2f}x "
          f"(batch 1), {out['pad']['ms_per_user_batched'] / out['sasrec-bce']['ms_per_user_batched']:.2f}x (batched)")


if __name__ == "__main__":
    main()
