"""Which gate/sensitivity selectors recover the planted fields (fs-deep's part of docs/selection_methods.md).

Run::

    .venv/bin/python benchmarks/fs_deep_planted.py                  # 3 data seeds, about 2 min on 1 thread
    .venv/bin/python benchmarks/fs_deep_planted.py --seeds 0 --methods lpfs,shark

Data: ``planted_ctr(20000, seed=s)`` (label from s0, s1, s2, d0; c0 a noisy copy of s0; n0-n3 and
dn0 noise), its 70/20 train/validation split. Training: ERASE's optimiser (Adam 1e-3, no weight
decay, patience 3) with batch 512 and at most 20 epochs, the setting of tests/select/test_planted.py.
Prints per method and seed whether the top 4 of the ranking are exactly the planted fields, the
worst rank of a planted field and the best rank of a noise field (0-based). Figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

VARIANTS = {
    "autofield": {},
    "autofield(update_frequency=2)": {"update_frequency": 2},
    "adafs": {},
    "optfs": {},
    "lpfs": {},
    "shark": {},
    "sfs": {},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="data seeds")
    ap.add_argument("--methods", default=",".join(VARIANTS), help="comma-separated variant names")
    ap.add_argument("--backbone", default="mlp")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from recwise.config import replace
    from recwise.data.synthetic import planted_ctr
    from recwise.select import ERASE_TRAIN, get_selector

    train_cfg = replace(ERASE_TRAIN, epochs=20, batch_size=512, device="cpu")
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{'method':32s} {'seed':>4s} {'top4':>6s} {'worst signal':>12s} {'best noise':>10s} {'s':>6s}  ranking")
    summary = {}
    for variant in args.methods.split(","):
        name = variant.split("(")[0]
        hits = 0
        for seed in seeds:
            p = planted_ctr(20000, seed=seed)
            t0 = time.perf_counter()
            sel = get_selector(name, VARIANTS[variant], backbone=args.backbone, train=train_cfg, seed=0)
            sel.fit(p.part("train"), p.part("val"))
            secs = time.perf_counter() - t0
            r = sel.ranking_
            exact = set(r[: len(p.signal)]) == set(p.signal)
            hits += exact
            worst = max(r.index(f) for f in p.signal)
            best_noise = min(r.index(f) for f in p.noise)
            print(f"{variant:32s} {seed:4d} {'yes' if exact else 'no':>6s} {worst:12d} {best_noise:10d} "
                  f"{secs:6.1f}  {r}")
        summary[variant] = f"{hits}/{len(seeds)}"
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
