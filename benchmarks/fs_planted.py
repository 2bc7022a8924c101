"""Every registered selector (but AltFS, which needs an LLM) on the planted-truth generator.

Prints, per method, whether its top 4 are exactly the causal fields (s0, s1, s2 sparse, d0
dense), whether every causal field beats every pure-noise field, where the noisy copy c0 of s0
lands, the whole ranking and the fit time. Data: ``planted_ctr(20000, seed=0)`` (10 fields:
4 causal, 1 copy, 5 noise with 5/50/500/5 values and one dense); deep methods train their
search backbone (mlp) for at most 20 epochs at batch 512 with early stopping.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fs_planted.py
"""

import time

import torch

torch.set_num_threads(1)
from recwise.config import replace  # noqa: E402
from recwise.data.synthetic import planted_ctr  # noqa: E402
from recwise.select import ERASE_TRAIN, get_selector, list_selectors  # noqa: E402

p = planted_ctr(20000, seed=0)
SIG = set(p.signal)
NOISE = set(p.noise)
tr, va = p.part("train"), p.part("val")
train = replace(ERASE_TRAIN, epochs=20, batch_size=512, device="cpu")
for m in list_selectors():
    if m == "altfs":
        continue
    t = time.time()
    try:
        s = get_selector(m, {}, seed=0, train=train).fit(tr, va)
    except Exception as e:  # noqa: BLE001 - report the method's failure and go on
        print(m, "ERROR", e)
        continue
    r = s.ranking_
    top4 = set(r[:4]) == SIG
    causal_before_noise = max(r.index(f) for f in SIG) < min(r.index(f) for f in NOISE)
    print(f"{m:18} top4==signal {top4!s:5} causal<noise {causal_before_noise!s:5} c0@{r.index('c0')+1} "
          f"ranking {r} {time.time()-t:.1f}s", flush=True)
