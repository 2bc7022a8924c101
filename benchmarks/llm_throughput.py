"""Local generation, every backend in one run: load times, tokens/s, the cached CLI, and the served llama.cpp.

Run alone on the machine (two busy processes on 2 cores distort every figure)::

    .venv/bin/python benchmarks/llm_throughput.py                       # the table of docs/llm.md
    .venv/bin/python benchmarks/llm_throughput.py --quick               # smollm2, 1 thread, 32 tokens

Prints, for SmolLM2-135M and Gemma 3 270M (GGUF), on 1 and 2 threads, greedy, 32 and 128 new tokens:

- tokens/s at batch 1 (one prompt at a time) and over a list of prompts (llama.cpp: 64 prompts,
  batched (the default), on the pool of one-row contexts, and batched on the ``--quant`` re-quantized
  model; transformers: ``--hf-prompts`` prompts in batches of 8 and 16, the better kept), the ratios
  llama.cpp / transformers, and the load average beside each row;
- cold load (a fresh process, transformers' de-quantized copy absent) and warm load (a second
  process) per backend;
- the wall time of a fully cached ``recwise llm generate``;
- the same prompts through ``python -m llama_cpp.server`` and the local llama.cpp backend: how many
  greedy texts are equal, and the HTTP overhead as a ratio of tokens/s.

Tokens/s = completion tokens actually produced / wall time. Figures only, no asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOPICS = [
    "a lighthouse keeper", "how a bicycle works", "the city of Paris", "learning to cook", "why the sky is blue",
    "the history of tea", "what makes a good friend", "a walk through a forest in autumn", "the moon",
    "a small village by the sea", "how bread is made", "the rules of chess", "a rainy afternoon", "volcanoes",
    "the life of bees", "a train journey",
]
STYLES = ["Write a short story about {}.", "Explain {} to a child.", "Describe {} in a few sentences.",
          "Tell me three facts about {}."]


def prompts(n: int) -> list[list[dict[str, str]]]:
    """``n`` distinct chat prompts of varied length."""
    out = []
    for i in range(n):
        text = STYLES[i % len(STYLES)].format(TOPICS[(i // len(STYLES) + i) % len(TOPICS)])
        out.append([{"role": "user", "content": text + (" Be precise." if i >= len(TOPICS) * 2 else "")}])
    return out


def rate(backend: Any, chats: list[Any], max_tokens: int, batch: int | None = None) -> tuple[float, int, float]:
    """(tokens/s, tokens, seconds) over ``chats``; ``batch`` rows per call (None: one call)."""
    from recwise.llm import GenerationParams, Row

    params = GenerationParams(max_tokens=max_tokens)
    rows = [Row(p, params, 0) for p in chats]
    step = batch or len(rows)
    start = time.perf_counter()
    done = []
    for i in range(0, len(rows), step):
        done += backend.complete(rows[i : i + step])
    wall = time.perf_counter() - start
    n = sum(c.completion_tokens for c in done)
    return n / wall, n, wall


def load_time(backend: str, model: str, home: str, threads: int) -> float:
    """Seconds from building a backend to its first token, in a fresh process."""
    code = (
        "import time, sys\n"
        "t = time.perf_counter()\n"
        "from recwise.llm import GenerationParams, Row, load_generator\n"
        f"g = load_generator(backend={backend!r}, model={model!r}, device='cpu', cache=False, threads={threads})\n"
        "g.backend.complete([Row('Hi', GenerationParams(max_tokens=1), 0)])\n"
        "print(time.perf_counter() - t)\n"
    )
    env = dict(os.environ, RECWISE_HOME=home, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def loads(models: list[str], threads: int, fig: dict[str, Any]) -> None:
    from recwise.llm._local import models_dir, resolve_model

    print("\nload: seconds from building the backend to its first token, in a fresh process "
          "(cold: no de-quantized copy yet; warm: a second start)")
    for model in models:
        resolve_model(model)  # gemma3: assembled once into the real home
        with tempfile.TemporaryDirectory() as home:
            (Path(home) / "models").mkdir()
            for f in models_dir().glob("*.gguf"):  # the assembled Gemma file, shared
                (Path(home) / "models" / f.name).symlink_to(f)
            for backend in ("llamacpp", "transformers"):
                cold = load_time(backend, model, home, threads)
                warm = load_time(backend, model, home, threads)
                fig.setdefault("load", {})[f"{model}/{backend}"] = {"cold_s": cold, "warm_s": warm}
                print(f"  {model:8s} {backend:12s} cold {cold:6.2f} s   warm {warm:6.2f} s")


def loadavg() -> str:
    """The 1-minute load average (other work on the machine distorts every figure)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def throughput(models: list[str], threads_list: list[int], lengths: list[int], n_prompts: int, hf_prompts: int,
               quant: str | None, with_pool: bool, fig: dict[str, Any]) -> None:
    import torch

    from recwise.llm import LlamaCppBackend, LocalBackend

    print(f"\ntokens/s, greedy. b1: one prompt at a time (llama.cpp: the default backend, whose one working "
          f"context then gets every thread). "
          f"{n_prompts} prompts: llama.cpp batched (the default: one context per thread, up to 64 rows each), "
          f"pool (one row per context; with --pool), {quant or 'no'} re-quantized batched (opt-in); transformers: "
          f"{hf_prompts} prompts in batches of 8 and 16, the better kept. load = 1-minute load average")
    print(f"  {'model':8s} {'thr':>3s} {'new':>4s} | {'llama b1':>8s} {'hf b1':>6s} {'ratio':>6s} | "
          f"{'batched':>7s} {'pool':>6s} {quant or '-':>7s} {'hf best':>7s} {'ratio':>6s} {'ratio q':>7s} | load")
    for model in models:
        hf = LocalBackend(model, device="cpu")
        for threads in threads_list:
            torch.set_num_threads(threads)
            # the default backend: a lone prompt decodes on one context with every thread (on a busy
            # 2-core machine a 2-thread context stalls at every OpenMP barrier: docs/llm.md)
            single = LlamaCppBackend(model, threads=threads)
            batched = LlamaCppBackend(model, threads=threads)
            pool = LlamaCppBackend(model, threads=threads, decoding="pool") if with_pool else None
            requant = LlamaCppBackend(model, threads=threads, quant=quant) if quant else None
            for b in (single, batched, pool, requant, hf):  # load + warm-up
                if b is not None:
                    rate(b, prompts(threads), 4)
            for new in lengths:
                lb1 = rate(single, prompts(4), new, batch=1)[0]
                many = rate(batched, prompts(n_prompts), new)[0]
                pooled = rate(pool, prompts(n_prompts), new)[0] if pool is not None else float("nan")
                many_q = rate(requant, prompts(n_prompts), new)[0] if requant is not None else float("nan")
                hb1 = rate(hf, prompts(2), new, batch=1)[0]
                hbest = max(rate(hf, prompts(hf_prompts), new, batch=b)[0] for b in (8, 16))
                load = loadavg()
                fig.setdefault("throughput", []).append(
                    {"model": model, "threads": threads, "max_tokens": new, "llamacpp_b1": lb1, "hf_b1": hb1,
                     "llamacpp_batched": many, "llamacpp_pool": pooled, f"llamacpp_{quant}": many_q,
                     "hf_best": hbest, "loadavg": load})
                print(f"  {model:8s} {threads:3d} {new:4d} | {lb1:8.1f} {hb1:6.1f} {lb1 / hb1:5.1f}x | "
                      f"{many:7.1f} {pooled:6.1f} {many_q:7.1f} {hbest:7.1f} {many / hbest:5.1f}x "
                      f"{many_q / hbest:6.1f}x | {load}", flush=True)


def cached_cli(fig: dict[str, Any]) -> None:
    exe = Path(sys.executable).with_name("recwise")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(exe), "llm", "generate", "Name one colour.", "--cache-path", str(Path(tmp) / "c.sqlite")]
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        second = time.perf_counter() - t0
    fig["cli"] = {"first_s": first, "cached_s": second}
    print(f"\nrecwise llm generate 'Name one colour.': first {first:.2f} s, fully cached {second:.2f} s "
          f"({out.stderr.strip()})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served(threads: int, n: int, new: int, fig: dict[str, Any]) -> None:
    """llama.cpp's own OpenAI-compatible server against the local llama.cpp backend, same prompts."""
    import httpx

    from recwise.llm import HttpBackend, LlamaCppBackend
    from recwise.llm._local import resolve_model

    src = resolve_model("smollm2")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(src.folder / str(src.gguf_file)),
         "--port", str(port), "--n_threads", str(threads), "--n_ctx", "4096"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        http = HttpBackend("smollm2", base_url=f"http://127.0.0.1:{port}/v1", concurrency=1, timeout_s=600,
                           extra_body={"repeat_penalty": 1.0})
        # one row at a time, as the server answers them: the ratio is the HTTP overhead alone
        local = LlamaCppBackend("smollm2", threads=threads, parallel=1, decoding="pool")
        chats = prompts(n)
        plain = [f"{c[0]['content']}\n" for c in chats[: n // 2]]
        rate(http, chats[:1], 4)
        rate(local, chats[:1], 4)
        from recwise.llm import GenerationParams, Row

        params = GenerationParams(max_tokens=new)
        rows = [Row(p, params, 0) for p in [*chats, *plain]]
        t0 = time.perf_counter()
        a = http.complete(rows)
        t_http = time.perf_counter() - t0
        t0 = time.perf_counter()
        b = local.complete(rows)
        t_local = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    equal = sum(x.text == y.text for x, y in zip(a, b))
    r_http = sum(c.completion_tokens for c in a) / t_http
    r_local = sum(c.completion_tokens for c in b) / t_local
    fig["served"] = {"equal": equal, "rows": len(rows), "http_tok_s": r_http, "local_tok_s": r_local}
    print(f"\nllama_cpp.server vs local llama.cpp, smollm2, {threads} thread(s), {len(rows)} prompts "
          f"({len(chats)} chat, {len(plain)} plain), greedy, {new} new tokens: {equal}/{len(rows)} texts equal; "
          f"served {r_http:.1f} tok/s, local {r_local:.1f} tok/s, local/served {r_local / r_http:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smollm2,gemma3")
    ap.add_argument("--threads", default="1,2", help="thread counts to measure")
    ap.add_argument("--max-tokens", default="32,128", help="new-token counts to measure")
    ap.add_argument("--prompts", type=int, default=64, help="prompts of llama.cpp's many-prompt figure")
    ap.add_argument("--hf-prompts", type=int, default=16, help="prompts of transformers' batched figure")
    ap.add_argument("--pool", action="store_true", help="also time the pool of one-row contexts (slow)")
    ap.add_argument("--quant", default="q8_0", help="opt-in re-quantization measured beside the default ('' = none)")
    ap.add_argument("--quick", action="store_true", help="smollm2, 1 thread, 32 tokens, 16 prompts")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: load,throughput,cli,server")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    if args.quick:
        args.models, args.threads, args.max_tokens, args.prompts, args.hf_prompts = "smollm2", "1", "32", 16, 8
    models = [m for m in args.models.split(",") if m]
    threads = [int(t) for t in args.threads.split(",")]
    lengths = [int(n) for n in args.max_tokens.split(",")]
    skip = set(args.skip.split(","))
    import llama_cpp

    fig: dict[str, Any] = {"llama_cpp": llama_cpp.__version__, "cores": os.cpu_count()}
    print(f"llama-cpp-python {llama_cpp.__version__}; models {models}; threads {threads}; new tokens {lengths}")
    if "load" not in skip:
        loads(models, max(threads), fig)
    if "throughput" not in skip:
        throughput(models, threads, lengths, args.prompts, args.hf_prompts, args.quant or None, args.pool, fig)
    if "cli" not in skip:
        cached_cli(fig)
    if "server" not in skip and shutil.which(sys.executable):
        served(min(threads), 16, max(lengths), fig)
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
