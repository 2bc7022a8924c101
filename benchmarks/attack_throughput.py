"""The attack harness's batched generation against the LLM layer's own batch generate.

    .venv/bin/python benchmarks/attack_throughput.py --model smollm2 --n 32 --max-tokens 64 --repeat 2

Both arms generate the clean chain-of-thought prompts of ``--n`` generated arithmetic problems
(greedy, the harness's stop strings), each into its own empty cache, so nothing comes from a cache:

- ``layer``: one ``Generator.generate(all prompts)`` call (the layer's best batch);
- ``harness``: :func:`recwise.tasks.attack.protocol._generate`, which sends ``--chunk`` prompts per
  ``generate`` call (so a killed run keeps finished chunks) and counts calls and tokens.

The model is loaded once before timing (every backend object of a process shares it). The arms
alternate for ``--repeat`` rounds. Tokens/s = completion tokens produced / wall time; the ratio
harness / layer is what to compare (1.0 = no loss). Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--backend", default="local")
    ap.add_argument("--n", type=int, default=32, help="prompts")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=32, help="the harness's prompts per generate call")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from recwise.data.reasoning import generate_arith
    from recwise.llm import GenerationParams, load_generator
    from recwise.tasks.attack.prompts import chat, clean_query
    from recwise.tasks.attack.protocol import STOP, _counted, _generate

    prompts = [chat(p.kind, clean_query(p, 0)) for p in generate_arith(n=args.n, steps=1, seed=12345)]
    params = GenerationParams(max_tokens=args.max_tokens, stop=STOP)
    with tempfile.TemporaryDirectory() as tmp:
        warm = load_generator(backend=args.backend, model=args.model, cache=False)
        t0 = time.perf_counter()
        warm.generate(["Hello"], GenerationParams(max_tokens=2))
        print(f"model load + warm-up: {time.perf_counter() - t0:.1f} s")
        rates: dict[str, list[float]] = {"layer": [], "harness": []}
        for r in range(args.repeat):
            for arm in ("layer", "harness") if r % 2 == 0 else ("harness", "layer"):
                gen = _counted(load_generator(backend=args.backend, model=args.model,
                                              cache_path=str(Path(tmp) / f"{arm}{r}.sqlite")))
                t0 = time.perf_counter()
                if arm == "layer":
                    gen.generate(prompts, params)
                else:
                    _generate(gen, prompts, args.max_tokens, args.chunk, "bench", False)
                wall = time.perf_counter() - t0
                usage = gen.backend.usage
                rates[arm].append(usage.tokens / wall)
                print(f"round {r} {arm:8s}: {usage.calls} prompts, {usage.tokens} tokens, {wall:.1f} s, "
                      f"{usage.tokens / wall:.1f} tok/s")
        lay, har = statistics.median(rates["layer"]), statistics.median(rates["harness"])
        print(f"\nmedian tok/s: layer {lay:.1f}, harness {har:.1f}, harness/layer {har / lay:.2f}x "
              f"({args.model}, {args.backend}, n={args.n}, max_tokens={args.max_tokens}, chunk={args.chunk})")


if __name__ == "__main__":
    main()
