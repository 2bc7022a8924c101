"""The attack harness's batched generation against the LLM layer's own batch generate.

    .venv/bin/python benchmarks/attack_throughput.py --model smollm2 --threads 1 --n 128 --max-tokens 64 \
        --chunks 32,64 --repeat 2

Every arm generates the clean chain-of-thought prompts of ``--n`` generated arithmetic problems
(greedy, the harness's stop strings), each into its own empty cache, so nothing comes from a cache:

- ``layer``: one ``Generator.generate(all prompts)`` call (the layer's best batch: every row in one
  call, so the llama.cpp backend's continuous batching keeps its ``batch`` slots full to the end);
- ``chunk=K``: :func:`recwise.tasks.attack.protocol._generate`, which sends ``K`` prompts per
  ``generate`` call (so a killed run keeps finished chunks) and counts calls and tokens.

The model is loaded once before timing (every backend object of a process shares it); ``--threads``
is the llama.cpp backend's thread count (one batched context per thread). The arms run in turn,
in reverse order on odd rounds, for ``--repeat`` rounds. Tokens/s = completion tokens produced /
wall time; the ratio arm / layer is what to compare (1.0 = no loss). Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--backend", default="local")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the backend's)")
    ap.add_argument("--n", type=int, default=128, help="prompts")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--chunks", default="32,64", help="comma-separated harness chunk sizes (one arm each)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from recwise.data.reasoning import generate_arith
    from recwise.llm import GenerationParams, load_generator
    from recwise.tasks.attack.prompts import chat, clean_query
    from recwise.tasks.attack.protocol import STOP, _counted, _generate

    chunks = [int(c) for c in args.chunks.split(",") if c.strip()]
    extra = {"threads": args.threads} if args.threads else {}
    prompts = [chat(p.kind, clean_query(p, 0)) for p in generate_arith(n=args.n, steps=1, seed=12345)]
    params = GenerationParams(max_tokens=args.max_tokens, stop=STOP)
    arms = ["layer"] + [f"chunk={c}" for c in chunks]
    with tempfile.TemporaryDirectory() as tmp:
        warm = load_generator(backend=args.backend, model=args.model, cache=False, **extra)
        t0 = time.perf_counter()
        warm.generate(["Hello"], GenerationParams(max_tokens=2))
        print(f"model load + warm-up: {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f}")
        rates: dict[str, list[float]] = {a: [] for a in arms}
        for r in range(args.repeat):
            for arm in arms if r % 2 == 0 else arms[::-1]:
                gen = _counted(load_generator(backend=args.backend, model=args.model,
                                              cache_path=str(Path(tmp) / f"{arm}{r}.sqlite"), **extra))
                t0 = time.perf_counter()
                if arm == "layer":
                    gen.generate(prompts, params)
                else:
                    _generate(gen, prompts, args.max_tokens, int(arm.split("=")[1]), "bench", False)
                wall = time.perf_counter() - t0
                usage = gen.backend.usage
                rates[arm].append(usage.tokens / wall)
                print(f"round {r} {arm:10s}: {usage.calls} prompts, {usage.tokens} tokens, {wall:.1f} s, "
                      f"{usage.tokens / wall:.1f} tok/s, load average {os.getloadavg()[0]:.1f}", flush=True)
        lay = statistics.median(rates["layer"])
        print(f"\n{args.model}, {args.backend}, threads={args.threads or 'default'}, n={args.n}, "
              f"max_tokens={args.max_tokens}: median tok/s")
        for arm in arms:
            med = statistics.median(rates[arm])
            print(f"  {arm:10s} {med:6.1f}  ({med / lay:.2f}x layer)")


if __name__ == "__main__":
    main()
