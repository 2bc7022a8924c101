"""Prompt-heavy generation (the RAG shape): llama.cpp against transformers in float32 and bfloat16.

A RAG answer is a long prompt (five documents, about 450 tokens) and a short greedy answer (24
tokens), so its cost is the prompt's matrix products, not decoding. On a CPU with AMX (this
project's VMs report ``amx_bf16``) torch runs bfloat16 products through oneDNN's AMX kernels, which
llama.cpp's build here leaves out (docs/llm.md, Install). One run, figures only; run it alone::

    .venv/bin/python benchmarks/llm_long_prompts.py                    # 32 geofacts prompts, 1 thread
    .venv/bin/python benchmarks/llm_long_prompts.py --prompts 64 --threads 2 --json out.json

Prints per backend: prompt and completion tokens, wall seconds, seconds per answer, the ratio to
llama.cpp, and how many answers equal llama.cpp's and transformers float32's text (bfloat16 and
the GGUF's own kernels round differently, so some greedy texts differ).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any


def rag_prompts(n: int, docs_per_prompt: int) -> list[Any]:
    """``n`` answer prompts of the RAG task: geofacts test questions with ``docs_per_prompt`` documents."""
    from recwise.data.geofacts import geofacts
    from recwise.retrieval.rag import answer_prompt

    qa = geofacts(seed=0)
    col = qa.collection
    texts = col.doc_texts()
    test = [i for i in range(col.n_queries) if not qa.is_train[i]][:n]
    step = max(1, len(texts) // 97)
    return [answer_prompt(col.query_texts[q], [texts[(q * 31 + j * step) % len(texts)] for j in range(docs_per_prompt)])
            for q in test]


def matmul_rates(threads: int) -> dict[str, float]:
    """GFLOP/s of a (4096, 384) @ (384, 1536) product (MiniLM / SmolLM2-sized) in float32 and bfloat16."""
    import torch

    torch.set_num_threads(threads)
    a, w = torch.randn(4096, 384), torch.randn(384, 1536)
    out = {}
    for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        x, y = a.to(dt), w.to(dt)
        for _ in range(3):
            x @ y
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - t0)
        out[name] = 2 * 4096 * 384 * 1536 / sorted(times)[len(times) // 2] / 1e9
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--docs", type=int, default=5, help="documents per prompt")
    ap.add_argument("--max-tokens", type=int, default=24, help="new tokens per answer (recwise rag's default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hf-batch", type=int, default=8, help="transformers rows per batch")
    ap.add_argument("--backends", default="llamacpp,transformers-float32,transformers-bfloat16")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from recwise.llm import GenerationParams, LlamaCppBackend, LocalBackend, Row

    torch.set_num_threads(args.threads)
    mm = matmul_rates(args.threads)
    print(f"matmul (4096, 384) @ (384, 1536): float32 {mm['float32']:.0f} GFLOP/s, bfloat16 {mm['bfloat16']:.0f} "
          f"GFLOP/s ({mm['bfloat16'] / mm['float32']:.1f}x)")
    chats = rag_prompts(args.prompts, args.docs)
    params = GenerationParams(max_tokens=args.max_tokens)
    print(f"{args.model}, {len(chats)} RAG prompts ({args.docs} documents), greedy {args.max_tokens} new tokens, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.2f}")
    rows: list[dict[str, Any]] = []
    texts: dict[str, list[str]] = {}
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if name == "llamacpp":
            backend: Any = LlamaCppBackend(args.model, threads=args.threads)
        elif name.startswith("transformers-"):
            backend = LocalBackend(args.model, device="cpu", batch_size=args.hf_batch, dtype=name.split("-", 1)[1])
        else:
            ap.error(f"unknown backend {name!r}")
        work = [Row(c, params, 0) for c in chats]
        backend.complete(work[:2])  # load and warm up
        t0 = time.perf_counter()
        out = backend.complete(work)  # one call: each backend batches as it does inside a run
        wall = time.perf_counter() - t0
        texts[name] = [c.text for c in out]
        rows.append({"backend": name, "prompts": len(chats), "prompt_tokens": sum(c.prompt_tokens for c in out),
                     "completion_tokens": sum(c.completion_tokens for c in out), "wall_s": wall,
                     "s_per_answer": wall / len(chats), "load": os.getloadavg()[0]})
    base = next((r["wall_s"] for r in rows if r["backend"] == "llamacpp"), None)
    print(f"{'backend':<22} {'prompt tok':>10} {'new tok':>8} {'wall s':>8} {'s/answer':>9} {'vs llama.cpp':>12} "
          f"{'= llama.cpp':>11} {'= fp32':>7} {'load':>5}")
    for r in rows:
        same = {ref: sum(a == b for a, b in zip(texts[r["backend"]], texts[ref])) if ref in texts else None
                for ref in ("llamacpp", "transformers-float32")}
        r.update(speedup_vs_llamacpp=base / r["wall_s"] if base else None, equal_to_llamacpp=same["llamacpp"],
                 equal_to_float32=same["transformers-float32"])
        print(f"{r['backend']:<22} {r['prompt_tokens']:>10} {r['completion_tokens']:>8} {r['wall_s']:>8.1f} "
              f"{r['s_per_answer']:>9.2f} {r['speedup_vs_llamacpp'] or float('nan'):>11.2f}x "
              f"{'-' if same['llamacpp'] is None else same['llamacpp']:>11} "
              f"{'-' if same['transformers-float32'] is None else same['transformers-float32']:>7} {r['load']:>5.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "matmul_gflops": mm, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
