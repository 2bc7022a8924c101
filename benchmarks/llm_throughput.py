"""Throughput of the LLM layer: local backends, encoder, cache hits, and the same through the server.

Run (2 threads, as on the project machines)::

    .venv/bin/python benchmarks/llm_throughput.py --threads 2 --models smollm2,gemma3

Prints, per model: load time, greedy tokens/s at batch 1 and batch 8 (completion tokens
actually produced / wall time), and the perplexity of a fixed English paragraph (a sanity
check of the GGUF conversion); then encoder texts/s, cache-hit latency, and the served
endpoint's tokens/s and texts/s with the ratio local/served. Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "Describe the city of Paris to a child.",
    "List some tips for learning to cook.",
    "Why is the sky blue?",
    "Tell me about the history of tea.",
    "What makes a good friend?",
    "Describe a walk through a forest in autumn.",
]
PARAGRAPH = (
    "The city of Paris is the capital of France. It is known for its museums, its cafes and the Eiffel "
    "Tower, which was built for the world fair of 1889. Every year, millions of visitors walk along the "
    "river Seine and visit the old churches and gardens of the city."
)


def chat(p: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": p}]


def tokens_per_s(backend: Any, prompts: list[Any], batch: int, max_tokens: int) -> tuple[float, int, float]:
    from recwise.llm import GenerationParams, Row

    params = GenerationParams(max_tokens=max_tokens)
    rows = [Row(p, params, 0) for p in prompts]
    start = time.perf_counter()
    done = []
    for i in range(0, len(rows), batch):
        done += backend.complete(rows[i : i + batch])
    wall = time.perf_counter() - start
    n = sum(c.completion_tokens for c in done)
    return n / wall, n, wall


def perplexity(backend: Any) -> float:
    import torch

    enc = backend.tokenizer(PARAGRAPH, return_tensors="pt").to(backend.device)
    with torch.inference_mode():
        loss = backend.model(**enc, labels=enc["input_ids"]).loss
    return float(torch.exp(loss))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="smollm2,gemma3")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--n-texts", type=int, default=512, help="texts for the encoder figure")
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of the alternating local/served comparison")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from recwise.llm import Encoder, GenerationParams, Generator, LLMCache, LocalBackend, LocalEncoderBackend

    fig: dict[str, Any] = {"threads": args.threads, "max_tokens": args.max_tokens}
    prompts = [chat(p) for p in PROMPTS]
    print(f"threads={args.threads}  max_tokens={args.max_tokens}  prompts={len(prompts)}  (greedy)")

    for name in [m for m in args.models.split(",") if m]:
        try:
            t0 = time.perf_counter()
            backend = LocalBackend(name, device="cpu")
            load = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - a missing optional wheel: report and go on
            print(f"{name}: skipped ({exc})")
            continue
        tokens_per_s(backend, prompts[:1], 1, 4)  # warm-up
        b1 = tokens_per_s(backend, prompts[:3], 1, args.max_tokens)
        b8 = tokens_per_s(backend, prompts, 8, args.max_tokens)
        ppl = perplexity(backend)
        fig[name] = {"load_s": load, "batch1_tok_s": b1[0], "batch8_tok_s": b8[0], "ppl": ppl}
        print(
            f"{name:8s} load {load:6.1f} s | batch 1: {b1[0]:6.1f} tok/s ({b1[1]} tok in {b1[2]:.1f} s) | "
            f"batch 8: {b8[0]:6.1f} tok/s ({b8[1]} tok in {b8[2]:.1f} s) | paragraph perplexity {ppl:.1f}"
        )

    texts = [f"{PROMPTS[i % len(PROMPTS)]} (variant {i})" for i in range(args.n_texts)]
    enc_backend = LocalEncoderBackend("minilm", device="cpu")
    Encoder(enc_backend, None, show_progress=False).encode(texts[:8])  # warm-up
    t0 = time.perf_counter()
    Encoder(enc_backend, None, show_progress=False).encode(texts)
    enc_rate = len(texts) / (time.perf_counter() - t0)
    fig["encoder_texts_s"] = enc_rate
    print(f"encoder  minilm: {enc_rate:7.1f} texts/s ({len(texts)} texts, batch 64)")

    with tempfile.TemporaryDirectory() as tmp:
        gen = Generator(LocalBackend("smollm2", device="cpu"), LLMCache(Path(tmp) / "c.sqlite"))
        params = GenerationParams(max_tokens=8)
        gen.complete(prompts[0], params)
        hits = []
        for _ in range(200):
            t0 = time.perf_counter()
            gen.complete(prompts[0], params)
            hits.append(time.perf_counter() - t0)
        enc = Encoder(enc_backend, LLMCache(Path(tmp) / "c.sqlite"), show_progress=False)
        enc.encode(texts[:64])
        t0 = time.perf_counter()
        enc.encode(texts[:64])
        embed_hit = (time.perf_counter() - t0) / 64
        fig["cache_hit_generate_ms"] = statistics.median(hits) * 1e3
        fig["cache_hit_embed_ms_per_text"] = embed_hit * 1e3
        print(f"cache hit: generate {statistics.median(hits) * 1e3:.2f} ms/call (median of 200, 0 model calls: "
              f"{gen.backend_calls == 1}); embed {embed_hit * 1e3:.3f} ms/text (64 texts)")

    if not args.skip_server:
        fig["server"] = serve_figures(args, prompts, texts, fig)
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))


def serve_figures(args: argparse.Namespace, prompts: list[Any], texts: list[str],
                  fig: dict[str, Any]) -> dict[str, Any]:
    """Local and served SmolLM2/MiniLM measured alternately (``--repeat`` rounds), medians compared.

    Alternating keeps both sides under the same load when other jobs share the cores.
    """
    import httpx

    from recwise.llm import Encoder, HttpBackend, HttpEncoderBackend, LocalBackend, LocalEncoderBackend

    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.Popen(
        [sys.executable, "-m", "recwise.llm._server", "--port", str(port), "--device", "cpu"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    rounds: dict[str, list[float]] = {k: [] for k in ("l1", "s1", "l8", "s8", "le", "se")}
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        local = LocalBackend("smollm2", device="cpu")
        local_enc = Encoder(LocalEncoderBackend("minilm", device="cpu"), None, show_progress=False)
        one = HttpBackend("smollm2", base_url=f"{base}/v1", concurrency=1, timeout_s=600)
        eight = HttpBackend("smollm2", base_url=f"{base}/v1", concurrency=8, timeout_s=600)
        enc = Encoder(HttpEncoderBackend("minilm", base_url=f"{base}/v1", timeout_s=600), None, show_progress=False)
        tokens_per_s(one, prompts[:1], 1, 4)  # warm-up
        enc.encode(texts[:8])
        n_enc = min(len(texts), 256)
        for _ in range(args.repeat):
            rounds["l1"].append(tokens_per_s(local, prompts[:2], 1, args.max_tokens)[0])
            rounds["s1"].append(tokens_per_s(one, prompts[:2], 1, args.max_tokens)[0])
            rounds["l8"].append(tokens_per_s(local, prompts, 8, args.max_tokens)[0])
            rounds["s8"].append(tokens_per_s(eight, prompts, 8, args.max_tokens)[0])  # 8 concurrent requests
            for key, e in (("le", local_enc), ("se", enc)):
                t0 = time.perf_counter()
                e.encode(texts[:n_enc])
                rounds[key].append(n_enc / (time.perf_counter() - t0))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"local vs served, alternating, median of {args.repeat} rounds (max_tokens={args.max_tokens}):")
    print(f"  smollm2 batch 1: local {med['l1']:6.1f} tok/s, served {med['s1']:6.1f} tok/s, "
          f"local/served {med['l1'] / med['s1']:.2f}x")
    print(f"  smollm2 batch 8: local {med['l8']:6.1f} tok/s, served {med['s8']:6.1f} tok/s (8 concurrent requests), "
          f"local/served {med['l8'] / med['s8']:.2f}x")
    print(f"  minilm:          local {med['le']:6.1f} texts/s, served {med['se']:6.1f} texts/s, "
          f"local/served {med['le'] / med['se']:.2f}x")
    return {**med, "rounds": rounds}


if __name__ == "__main__":
    main()
