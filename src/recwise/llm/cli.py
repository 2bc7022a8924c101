"""``recwise llm ...``: generate, embed, serve, and cache stats|clear.

``generate`` and ``embed`` go through the disk cache (``--no-cache`` skips it) and load a local
model only when the cache cannot answer. Both run locally unless ``--backend http`` (then
``--base-url`` / ``$RECWISE_LLM_BASE_URL``); ``generate`` runs a GGUF model through llama.cpp when
llama-cpp-python is installed (``--backend transformers`` to force the other).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from recwise.errors import ConfigError

__all__ = ["add_serve_arguments", "register", "run_serve"]


def _add_backend(p: argparse.ArgumentParser, default_model: str, generation: bool = True) -> None:
    if generation:
        p.add_argument("--backend", choices=["local", "llamacpp", "transformers", "http"], default="local",
                       help="where the model runs; local = llama.cpp for a GGUF model on CPU when llama-cpp-python "
                            "is installed, else transformers")
        p.add_argument("--parallel", type=int, default=None,
                       help="llama.cpp: contexts decoding at once (default one per thread; threads = --threads "
                            "or every core)")
        p.add_argument("--decoding", choices=["batched", "pool"], default="batched",
                       help="llama.cpp: batched = many rows in one context per thread (default); pool = one "
                            "context per row at a time")
        p.add_argument("--batch", type=int, default=None, help="llama.cpp batched decoding: rows per context "
                       "(default 64)")
        p.add_argument("--quant", default=None,
                       help="llama.cpp, opt-in: re-quantize the GGUF model once (q8_0, iq4_nl, q4_0); faster "
                            "batched decoding, other outputs")
        p.add_argument("--extra-body", default=None,
                       help="HTTP: a JSON object merged into every request, e.g. '{\"repeat_penalty\": 1.0}'")
    else:
        p.add_argument("--backend", choices=["local", "http"], default="local", help="where the model runs")
    p.add_argument("--model", default=None, help=f"model name or path (local default {default_model}; "
                   "HTTP default $RECWISE_LLM_MODEL)")
    p.add_argument("--base-url", default=None, help="HTTP backend URL incl. /v1 (default $RECWISE_LLM_BASE_URL)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")
    p.add_argument("--cache-path", default=None, help="cache file (default $RECWISE_HOME/llm-cache.sqlite)")


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {"backend": args.backend, "model": args.model, "base_url": args.base_url, "device": args.device,
            "cache": not args.no_cache, "cache_path": args.cache_path}


def _generator_config(args: argparse.Namespace) -> dict[str, Any]:
    return {**_config(args), "threads": getattr(args, "threads", None), "parallel": args.parallel,
            "decoding": args.decoding, "batch": args.batch, "quant": args.quant, "extra_body": args.extra_body}


def _silence_if_quiet(args: argparse.Namespace) -> None:
    """Under --quiet, hide the model loaders' progress bars too (set before anything is imported)."""
    if getattr(args, "quiet", False):
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _generate(args: argparse.Namespace) -> int:
    from recwise.llm._factory import load_generator
    from recwise.llm._generator import GenerationParams

    params = GenerationParams(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                              stop=tuple(args.stop or ()), seed=args.seed, n=args.n)
    _silence_if_quiet(args)
    gen = load_generator(**_generator_config(args))
    prompts: list[Any]
    if args.raw:
        prompts = list(args.prompt)
    else:
        system = [{"role": "system", "content": args.system}] if args.system else []
        prompts = [system + [{"role": "user", "content": p}] for p in args.prompt]
    out = gen.sample(prompts, params)
    if args.json:
        print(json.dumps([{"prompt": p, "texts": t} for p, t in zip(args.prompt, out)], ensure_ascii=False))
    else:
        for texts in out:
            for t in texts:
                print(t)
    if not getattr(args, "quiet", False):
        print(f"[{gen.backend_calls} model call(s), {len(prompts) * args.n - gen.backend_calls} from cache]",
              file=sys.stderr)
    return 0


def _embed(args: argparse.Namespace) -> int:
    from recwise.llm._factory import load_encoder

    _silence_if_quiet(args)
    enc = load_encoder(**_config(args), show_progress=not getattr(args, "quiet", False))
    vecs = enc.encode(list(args.text))
    for text, v in zip(args.text, vecs):
        print(json.dumps({"text": text, "dim": int(v.shape[0]), "embedding": [round(float(x), 6) for x in v]}))
    return 0


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``recwise llm serve`` (also used by ``python -m recwise.llm._server``)."""
    p.add_argument("--model", default="smollm2", help="smollm2, gemma3, a .gguf file, a HF folder, or none")
    p.add_argument("--encoder", default="minilm", help="minilm, a sentence-transformers folder, or none")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default localhost only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", choices=["local", "llamacpp", "transformers"], default="local",
                   help="local = llama.cpp for a GGUF model on CPU when llama-cpp-python is installed, "
                        "else transformers")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batch-window-ms", type=float, default=30.0,
                   help="requests arriving within this time of the first are generated as one batch")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])


def run_serve(args: argparse.Namespace) -> int:
    from recwise.llm._server import serve

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535; got {args.port}")
    serve(args.model, host=args.host, port=args.port, encoder=args.encoder, device=args.device,
          batch_size=args.batch_size, batch_window_s=args.batch_window_ms / 1000, log_level=args.log_level,
          backend=args.backend)
    return 0


def _cache_stats(args: argparse.Namespace) -> int:
    from recwise.llm._cache import LLMCache

    stats = LLMCache(args.cache_path).stats()
    print(f"cache: {stats.path}")
    print(f"entries: {stats.entries}  size: {stats.size_bytes / 2**20:.2f} MiB")
    for kind, backend, model, n in stats.by_kind:
        print(f"  {kind:8s} {backend:12s} {model}: {n}")
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    from recwise.llm._cache import LLMCache

    cache = LLMCache(args.cache_path)
    n = cache.clear(kind=args.kind, model=args.model)
    print(f"deleted {n} entries from {cache.path}")
    return 0


def register(subparsers: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``llm`` command group to the recwise CLI."""
    llm = subparsers.add_parser("llm", help="LLM generation, embeddings, server and cache")
    sub = llm.add_subparsers(dest="llm_command", required=True)

    g = sub.add_parser("generate", help="generate text for one or more prompts (cached)")
    g.add_argument("prompt", nargs="+", help="prompt text(s); each is one user message unless --raw")
    _add_backend(g, "smollm2")
    g.add_argument("--raw", action="store_true", help="continue the text as is (no chat template)")
    g.add_argument("--system", default=None, help="system message (chat mode)")
    g.add_argument("--max-tokens", type=int, default=64)
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--n", type=int, default=1, help="samples per prompt")
    g.add_argument("--stop", action="append", help="stop string (repeatable)")
    g.add_argument("--json", action="store_true", help="print JSON")
    add_common(g)
    g.set_defaults(func=_generate)

    e = sub.add_parser("embed", help="embed one or more texts (cached); prints JSON lines")
    e.add_argument("text", nargs="+")
    _add_backend(e, "minilm", generation=False)
    add_common(e)
    e.set_defaults(func=_embed)

    s = sub.add_parser("serve", help="serve the local backend as an OpenAI-compatible API")
    add_serve_arguments(s)
    add_common(s)
    s.set_defaults(func=run_serve)

    c = sub.add_parser("cache", help="inspect or clear the LLM cache")
    csub = c.add_subparsers(dest="cache_command", required=True)
    st = csub.add_parser("stats", help="entries per kind, backend and model")
    st.add_argument("--cache-path", default=None)
    add_common(st)
    st.set_defaults(func=_cache_stats)
    cl = csub.add_parser("clear", help="delete cached entries")
    cl.add_argument("--cache-path", default=None)
    cl.add_argument("--kind", choices=["generate", "embed"], default=None, help="only this kind")
    cl.add_argument("--model", default=None, help="only this model fingerprint (see stats)")
    add_common(cl)
    cl.set_defaults(func=_cache_clear)
