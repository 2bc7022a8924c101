"""PAD phase 2: training time per epoch with each MK-MMD implementation, in one run.

Trains the phase-2 alignment tower (``PADPhase2``: BCE + 0.2 x MK-MMD, the release's defaults: d
128, 5 blocks, max_len 20, batch 128, AdamW lr 1e-5 wd 0.1, MMD groups of 16 sequences) on
MovieLens-100K's 943 latest windows, one epoch per implementation in turn, round after round
(interleaved, so that a shared machine's load hits each alike):

* ``reference``: the first implementation (``model.mmd_impl=reference``): autograd over every row of
  each group (8 groups of 2 x 672 rows per batch), one distance matrix shared by the kernels;
* ``fast`` (the default): the same estimator on each group's distinct items weighted by their count,
  one squared-distance matrix per group by one batched matmul, kernel sum and derivative in one
  pass, the gradient in closed form (two matmuls);
* ``linear``: tllib's linear-time estimator (``model.mmd_estimator=linear``);
* ``none``: no alignment loss (``model.align_loss=none``), the floor: the rest of phase 2.

Also checks, on the first batch, that ``fast`` gives the reference's loss and gradients. The text
matrix is 384-d (MiniLM's width) random vectors unless ``--text`` names a phase-0 ``.npy``: the cost
does not depend on the text's content. Run it under the benchmark lock with the load printed:

    flock /tmp/recwise-bench.lock .venv/bin/python benchmarks/pad_mmd.py --rounds 2 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from recwise.data.seq_datasets import load_sequences
from recwise.data.sequence import seq_schema
from recwise.models.seq.pad import PADConfig, PADPhase1, PADPhase2
from recwise.tasks.pad.protocol import _train_windows, train_keys

VARIANTS = {"reference": {"mmd_impl": "reference"}, "fast": {}, "linear": {"mmd_estimator": "linear"},
            "none": {"align_loss": "none"}}


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--text", type=Path, default=None, help="a phase-0 matrix (.npy); default random 384-d")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="steps per epoch timed (0: the whole epoch)")
    ap.add_argument("--variants", default="reference,fast,linear,none")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seqs, _ = load_sequences("ml-100k", args.data_dir)
    base = PADConfig()
    schema = seq_schema(seqs.n_items)
    g = torch.Generator().manual_seed(0)
    text = (torch.from_numpy(np.load(args.text)) if args.text else torch.randn(seqs.n_items + 1, 384, generator=g))
    text[0] = 0
    windows = _train_windows(seqs, base.max_len, "latest")
    keys = train_keys(seqs)
    torch.manual_seed(0)
    p1 = PADPhase1(schema, base)
    models, opts = {}, {}
    for name in args.variants.split(","):
        m = PADPhase2(schema, replace(base, **VARIANTS[name]), text)  # type: ignore[arg-type]
        m.copy_from(p1)
        m.set_seen(keys)
        models[name] = m
        opts[name] = torch.optim.AdamW(m.parameters(), lr=1e-5, weight_decay=0.1)
    B = 128
    n = len(windows["user"])
    steps = (n + B - 1) // B if not args.steps else args.steps
    print(f"ml-100k phase 2: {n} windows, {steps} steps of {B} per epoch, threads {args.threads}, "
          f"loadavg before {_loadavg()}")

    if "reference" in models and "fast" in models:  # same value and gradients on one batch
        batch = {k: v[:B] for k, v in windows.items()}
        neg = models["fast"]._negatives(batch)
        ref, fast = models["reference"].eval(), models["fast"].eval()
        fast.load_state_dict(ref.state_dict())
        a_ref, a_fast = ref.align_loss(batch, neg), fast.align_loss(batch, neg)
        g_ref = torch.autograd.grad(a_ref, list(ref.parameters()), allow_unused=True)
        g_fast = torch.autograd.grad(a_fast, list(fast.parameters()), allow_unused=True)
        gdiff = max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-30))
                    for x, y in zip(g_fast, g_ref) if x is not None and y is not None)
        print(f"one batch, eval mode: MMD reference {a_ref.item():.6f}, fast {a_fast.item():.6f}; "
              f"largest relative gradient difference {gdiff:.2e}")
        for m in models.values():
            m.copy_from(p1)

    per_step: dict[str, list[float]] = {name: [] for name in models}
    for r in range(args.rounds):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(r))
        for name, m in models.items():
            m.train()
            torch.manual_seed(r)
            t0 = time.perf_counter()
            for s in range(steps):
                idx = perm[s * B:(s + 1) * B]
                loss = m.loss({k: v[idx] for k, v in windows.items()})
                opts[name].zero_grad()
                loss.backward()
                opts[name].step()
            per_step[name].append((time.perf_counter() - t0) / steps)
            print(f"round {r}: {name:<9} {per_step[name][-1]:.3f} s/step  loadavg {_loadavg()}", flush=True)
    full = (n + B - 1) // B
    print(f"\nmedian over {args.rounds} rounds, s/epoch = s/step x {full} steps (training only, no evaluation):")
    med = {name: statistics.median(v) for name, v in per_step.items()}
    for name, v in med.items():
        print(f"{name:<9} {v:.3f} s/step  {v * full:.2f} s/epoch")
    if "reference" in med and "fast" in med:
        extra = {k: med[k] - med.get("none", 0.0) for k in med if k != "none"}
        print(f"fast / reference: {med['fast'] / med['reference']:.3f} of the phase-2 epoch"
              + (f"; MMD part alone (minus 'none'): {extra['fast'] / extra['reference']:.3f}" if "none" in med else ""))
    print(f"loadavg after {_loadavg()}")


if __name__ == "__main__":
    main()
