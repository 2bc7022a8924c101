"""Seconds per training step and per epoch of the sequential models on CPU, before and after the fast
Mamba path, at several thread counts, and the selective scan against a matmul yardstick: one run.

For each thread count and model: ML-100K training examples (``--preset sigma-paper``, default: every
model on prefix examples at batch 2048 with SIGMA's baseline configs, configs/seq/sigma-paper.yaml;
``--preset none``: recwise's defaults, each model's own examples), ``--steps`` timed optimiser steps
(forward, CE loss, backward, Adam) after one warm-up step; wall time and this process's CPU time
(all threads; a loaded shared machine inflates it less than wall time). An epoch is extrapolated as
steps per epoch x median step time. Mamba4Rec and SIGMA run in each of ``--impls``:

* ``before``: the first numba kernel (``scan=numba_v1``) in mamba_ssm's (B, d, L) layout, every
  position through the post-scan layers (``positions=all``) -- the code before issue 18;
* ``after``: the defaults (channel-vectorised kernel, (B, L, d) layout, numba conv, last position).

Both give the same numbers up to float rounding (tests/models/seq/test_sigma.py). Ratios are
within this run: SIGMA / SASRec per thread count, and before / after.

Then the scan alone (:mod:`selective_scan`'s ``yardstick``): SIGMA's shape (batch 2 x 2048, both
directions; d_inner 128, d_state 32, L 50), forward and forward + backward, in GFLOP/s by VMamba's
count (9 B L D N per forward, backward 2x forward), next to a matmul of the same FLOPs.

    flock /tmp/recwise-bench.lock .venv/bin/python benchmarks/seq_step.py          # everything (~10 min)
    .venv/bin/python benchmarks/seq_step.py --threads 1 --models sigma,sasrec --steps 2
    .venv/bin/python benchmarks/seq_step.py --preset none --impls after --scan-batch 0   # no yardstick
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

IMPL_OPTIONS = {"before": {"scan": "numba_v1", "positions": "all"}, "after": {}}
MAMBAS = ("mamba4rec", "sigma")


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


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def time_model(name: str, impl: str, seqs, preset, examples: str, batch: int, steps: int) -> dict:  # noqa: ANN001
    from recwise.config import config_from_dict
    from recwise.data.sequence import make_examples, seq_schema
    from recwise.registry import get_model
    from recwise.tasks.sequential import seq_loss
    from recwise.tasks.sequential.protocol import resolve_preset
    from recwise.train.presets import sequential_train_defaults as train_defaults

    cls = get_model("sequential", name)
    opts = resolve_preset(preset, name) if preset else {"train": {}, "model": {}, "data": {}}
    kind = examples if examples != "auto" else opts["data"].get("examples", "auto")
    kind = cls.examples[0] if kind == "auto" else kind
    model_opts = {**opts["model"], **(IMPL_OPTIONS[impl] if name in MAMBAS else {})}
    if "max_len" in cls.Config.__dataclass_fields__:
        model_opts.setdefault("max_len", 50)
    data = make_examples(seqs, kind, 50, "right")
    n = len(data["item_seq"])
    bs = batch or int(opts["train"].get("batch_size", train_defaults(kind)["batch_size"]))
    torch.manual_seed(0)
    model = cls(seq_schema(seqs.n_items), config_from_dict(cls.Config, model_opts))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(n)
    walls, cpus = [], []
    for i in range(steps + 1):
        idx = perm[(i * bs) % n:][:bs]
        b = {k: torch.as_tensor(v)[idx] for k, v in data.items()}
        w0, c0 = time.perf_counter(), time.process_time()
        loss = seq_loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    n_steps = math.ceil(n / bs)
    w, c = statistics.median(walls), statistics.median(cpus)
    return {"model": name, "impl": impl if name in MAMBAS else "-", "examples": kind, "batch": bs, "n_examples": n,
            "steps_per_epoch": n_steps, "wall_s_per_step": w, "cpu_s_per_step": c, "wall_s_per_epoch": w * n_steps,
            "cpu_s_per_epoch": c * n_steps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="sasrec,gru4rec,mamba4rec,sigma")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--impls", default="before,after", help="for mamba4rec/sigma: before, after (see above)")
    ap.add_argument("--preset", default="sigma-paper", help="a sequential preset, or 'none' for recwise's defaults")
    ap.add_argument("--examples", default="auto", choices=("auto", "prefix", "sequence"))
    ap.add_argument("--batch", type=int, default=0, help="0: the preset's / task's default")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--scan-batch", type=int, default=4096, help="scan yardstick batch (0: skip it)")
    ap.add_argument("--scan-repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from recwise.tasks.sequential.protocol import load_preset

    preset = None if args.preset == "none" else load_preset(args.preset)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    threads = [int(t) for t in args.threads.split(",")]
    seqs, source = load(50)
    print(f"{source}, preset {args.preset}, median of {args.steps} steps after 1 warm-up; load average at start "
          f"{loadavg()}")
    rows = []
    for th in threads:
        torch.set_num_threads(th)
        print(f"\n{th} thread(s)")
        print(f"{'model':<10} {'impl':<7} {'examples':<9} {'batch':>6} {'steps/ep':>8} {'wall s/step':>11} "
              f"{'cpu s/step':>10} {'wall s/epoch':>12} {'cpu s/epoch':>11}")
        for name in models:
            for impl in impls if name in MAMBAS else impls[-1:]:
                r = {"threads": th, **time_model(name, impl, seqs, preset, args.examples, args.batch, args.steps)}
                rows.append(r)
                print(f"{name:<10} {r['impl']:<7} {r['examples']:<9} {r['batch']:>6} {r['steps_per_epoch']:>8} "
                      f"{r['wall_s_per_step']:>11.3f} {r['cpu_s_per_step']:>10.3f} {r['wall_s_per_epoch']:>12.1f} "
                      f"{r['cpu_s_per_epoch']:>11.1f}", flush=True)
        base = next((r for r in rows if r["threads"] == th and r["model"] == "sasrec"), None)
        for r in rows:
            if r["threads"] != th or base is None or r["model"] == "sasrec":
                continue
            wall, cpu = (r[k] / base[k] for k in ("wall_s_per_epoch", "cpu_s_per_epoch"))
            print(f"  {r['model']}/sasrec ({r['impl']}): wall {wall:.2f}x, cpu {cpu:.2f}x")
        for name in MAMBAS:
            b = next((r for r in rows if r["threads"] == th and r["model"] == name and r["impl"] == "before"), None)
            a = next((r for r in rows if r["threads"] == th and r["model"] == name and r["impl"] == "after"), None)
            if a and b:
                print(f"  {name} before/after: wall {b['wall_s_per_epoch'] / a['wall_s_per_epoch']:.2f}x, "
                      f"cpu {b['cpu_s_per_epoch'] / a['cpu_s_per_epoch']:.2f}x faster")
    scan_rows = []
    if args.scan_batch:
        from selective_scan import yardstick

        for th in threads:
            print(f"\nselective scan, batch {args.scan_batch}, d_inner 128, d_state 32, L 50, {th} thread(s), "
                  f"median of {args.scan_repeats}")
            scan_rows += yardstick(args.scan_batch, 128, 50, 32, th, args.scan_repeats, ("numba_v1", "numba"))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB; load average at end "
          f"{loadavg()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "source": source, "rows": rows, "scan": scan_rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
