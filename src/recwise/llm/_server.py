"""``recwise llm serve``: the local backend as an OpenAI-compatible server (FastAPI + uvicorn).

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions``,
``POST /v1/completions`` (``prompt`` may be a list: one batched call) and
``POST /v1/embeddings``. Requests that arrive together are generated in one batch: a
batcher thread collects what is queued within ``batch_window_s`` (30 ms) of the first
request and runs it as one backend call. The server binds to 127.0.0.1 unless told otherwise; it has no
authentication, so expose it only behind something that has.

Fault injection (tests only)
----------------------------
When the server starts with ``RECWISE_LLM_FAULTS`` set (``1``, or a JSON list used as
the initial plan), it also serves ``POST /_faults`` (body ``{"plan": [...]}``: replace the
plan and zero the counter) and ``GET /_faults`` (``{"remaining": n, "requests": m, "batches": [...]}``,
the last being the number of requests merged into each recent backend call).
Each ``/v1/*`` request takes the next fault of the plan, if any:

- ``{"kind": "http_500"}``: answer HTTP 500;
- ``{"kind": "http_429", "retry_after": s}``: answer HTTP 429 with ``Retry-After: s``;
- ``{"kind": "malformed"}``: answer HTTP 200 with a body that is not JSON;
- ``{"kind": "delay", "seconds": s}``: wait ``s`` seconds, then answer normally.

Without the variable these routes do not exist and no request is altered.

Seeds: choice 0 of a request samples with the request's ``seed``; choice ``j > 0`` with
``row_seed(seed, j)``. The HTTP backend sends each sample's own seed with ``n=1``, so a
sampled text through the server equals the local backend's.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations
# (``Request``, ``dict``) at run time, and ``Request`` is imported inside create_app.
import asyncio
import json
import os
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from recwise.errors import ConfigError, DependencyError
from recwise.llm._generator import Completion, GenerationParams, Row, normalise_prompt, row_seed

__all__ = ["FAULTS_ENV", "create_app", "serve"]

FAULTS_ENV = "RECWISE_LLM_FAULTS"
_FAULT_KINDS = ("http_500", "http_429", "malformed", "delay")


class _Batcher:
    """Collect rows from concurrent requests and run them through the backend together."""

    def __init__(self, backend: Any, window_s: float) -> None:
        self.backend = backend
        self.window_s = window_s
        self._queue: queue.Queue[tuple[list[Row], Future[list[Completion]]]] = queue.Queue()
        self.batch_sizes: list[int] = []  # requests per backend call, most recent last (last 100)
        threading.Thread(target=self._loop, name="recwise-llm-batcher", daemon=True).start()

    def submit(self, rows: list[Row]) -> list[Completion]:
        fut: Future[list[Completion]] = Future()
        self._queue.put((rows, fut))
        return fut.result()

    def _loop(self) -> None:
        while True:
            jobs = [self._queue.get()]
            deadline = time.monotonic() + self.window_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    jobs.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            rows = [r for job, _ in jobs for r in job]
            self.batch_sizes = [*self.batch_sizes[-99:], len(jobs)]
            try:
                done = self.backend.complete(rows)
            except Exception as exc:  # noqa: BLE001 - hand the failure to every waiting request
                for _, fut in jobs:
                    fut.set_exception(exc)
                continue
            start = 0
            for job, fut in jobs:
                fut.set_result(done[start : start + len(job)])
                start += len(job)


def _params(body: dict[str, Any], default_max_tokens: int) -> GenerationParams:
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or default_max_tokens
    return GenerationParams(
        temperature=float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0),
        top_p=float(body.get("top_p", 1.0) if body.get("top_p") is not None else 1.0),
        max_tokens=int(max_tokens),
        stop=tuple(stop),
        seed=int(body.get("seed") or 0),
        n=int(body.get("n") or 1),
    )


def create_app(
    backend: Any | None,
    encoder: Any | None,
    *,
    model_name: str,
    encoder_name: str = "minilm",
    faults: bool = False,
    initial_faults: Sequence[dict[str, Any]] = (),
    batch_window_s: float = 0.03,
    default_max_tokens: int = 256,
) -> Any:
    """Build the FastAPI app around a generation backend and/or an encoder backend."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response
    except ImportError:
        raise DependencyError("the server needs fastapi and uvicorn: pip install 'recwise[llm]'") from None

    app = FastAPI(title="recwise llm", docs_url=None, redoc_url=None)
    batcher = _Batcher(backend, batch_window_s) if backend is not None else None
    state: dict[str, Any] = {"plan": [dict(f) for f in initial_faults], "requests": 0}
    state_lock = threading.Lock()

    def error(status: int, message: str, kind: str = "invalid_request_error") -> Any:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    if faults:

        @app.middleware("http")
        async def inject(request: Request, call_next: Any) -> Any:
            if not request.url.path.startswith("/v1/"):
                return await call_next(request)
            with state_lock:
                state["requests"] += 1
                fault = state["plan"].pop(0) if state["plan"] else None
            if fault is None:
                return await call_next(request)
            kind = fault["kind"]
            if kind == "http_500":
                return error(500, "injected fault: internal error", "server_error")
            if kind == "http_429":
                return JSONResponse(
                    {"error": {"message": "injected fault: rate limited", "type": "rate_limit"}},
                    status_code=429, headers={"Retry-After": str(fault.get("retry_after", 1))},
                )
            if kind == "malformed":
                return Response('{"choices": [ not json', media_type="application/json")
            await asyncio.sleep(float(fault.get("seconds", 1.0)))
            return await call_next(request)

        @app.post("/_faults")
        async def set_faults(request: Request) -> Any:
            plan = (await request.json()).get("plan", [])
            bad = [f for f in plan if not isinstance(f, dict) or f.get("kind") not in _FAULT_KINDS]
            if bad:
                return error(400, f"unknown fault(s) {bad}; kinds: {list(_FAULT_KINDS)}")
            with state_lock:
                state["plan"] = list(plan)
                state["requests"] = 0
            return {"remaining": len(plan), "requests": 0}

        @app.get("/_faults")
        def get_faults() -> Any:
            with state_lock:
                out = {"remaining": len(state["plan"]), "requests": state["requests"]}
            if batcher is not None:
                out["batches"] = list(batcher.batch_sizes)
            return out

    @app.get("/health")
    def health() -> Any:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> Any:
        names = ([model_name] if backend is not None else []) + ([encoder_name] if encoder is not None else [])
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "recwise"} for n in names]}

    def run_rows(prompts: list[Any], params: GenerationParams) -> list[list[Completion]]:
        assert batcher is not None
        # Choice 0 uses the request seed itself, so a client that sends each sample's own seed
        # with n=1 (as HttpBackend does) gets exactly the local backend's sample.
        seeds = [params.seed if j == 0 else row_seed(params.seed, j) for j in range(params.n)]
        rows = [Row(p, params, seeds[j]) for p in prompts for j in range(params.n)]
        done = batcher.submit(rows)
        return [done[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]

    def usage(groups: list[list[Completion]]) -> dict[str, int]:
        prompt = sum(g[0].prompt_tokens for g in groups)
        completion = sum(c.completion_tokens for g in groups for c in g)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def check_model(body: dict[str, Any], served: Any, name: str) -> Any:
        if served is None:
            return error(404, f"this server has no {'generation' if name == model_name else 'embedding'} model")
        if body.get("model") not in (None, name):
            return error(404, f"model {body.get('model')!r} not served; this server serves {name!r}", "model_not_found")
        if body.get("stream"):
            return error(400, "stream=true is not supported")
        return None

    @app.post("/v1/chat/completions")
    def chat(body: dict[str, Any]) -> Any:
        bad = check_model(body, backend, model_name)
        if bad is not None:
            return bad
        try:
            params = _params(body, default_max_tokens)
            messages = normalise_prompt(body.get("messages") or [])
        except (ConfigError, TypeError, ValueError) as exc:
            return error(400, str(exc))
        groups = run_rows([messages], params)
        choices = [
            {"index": j, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason}
            for j, c in enumerate(groups[0])
        ]
        return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                "model": model_name, "choices": choices, "usage": usage(groups)}

    @app.post("/v1/completions")
    def completions(body: dict[str, Any]) -> Any:
        bad = check_model(body, backend, model_name)
        if bad is not None:
            return bad
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            return error(400, "prompt must be a string or a non-empty list of strings")
        try:
            params = _params(body, default_max_tokens)
        except (ConfigError, TypeError, ValueError) as exc:
            return error(400, str(exc))
        groups = run_rows(prompts, params)
        choices = [
            {"index": i * params.n + j, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}
            for i, g in enumerate(groups) for j, c in enumerate(g)
        ]
        return {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time()),
                "model": model_name, "choices": choices, "usage": usage(groups)}

    @app.post("/v1/embeddings")
    def embeddings(body: dict[str, Any]) -> Any:
        bad = check_model(body, encoder, encoder_name)
        if bad is not None:
            return bad
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return error(400, "input must be a string or a non-empty list of strings")
        from recwise.llm._encoder import l2_normalise

        vecs = l2_normalise(encoder.encode(texts))  # type: ignore[union-attr]  # check_model refused a missing encoder
        return {"object": "list", "model": encoder_name,
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)],
                "usage": {"prompt_tokens": 0, "total_tokens": 0}}

    return app


def serve(
    model: str = "smollm2",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    encoder: str | None = "minilm",
    device: str = "auto",
    batch_size: int = 8,
    batch_window_s: float = 0.03,
    log_level: str = "warning",
    backend: str = "local",
) -> None:
    """Serve until interrupted (fault injection per ``$RECWISE_LLM_FAULTS``).

    ``backend`` is ``local`` (llama.cpp for a GGUF model on CPU when installed, else transformers),
    ``llamacpp`` or ``transformers``; the model loads at the first request.
    """
    try:
        import uvicorn
    except ImportError:
        raise DependencyError("the server needs fastapi and uvicorn: pip install 'recwise[llm]'") from None
    from recwise.llm._encoder import LocalEncoderBackend
    from recwise.llm._factory import load_generator

    gen = None
    if model != "none":
        gen = load_generator(backend=backend, model=model, device=device, batch_size=batch_size, cache=False).backend
    enc = LocalEncoderBackend(encoder, device=device) if encoder not in (None, "none") else None
    raw = os.environ.get(FAULTS_ENV, "")
    faults = raw not in ("", "0")
    initial: list[dict[str, Any]] = []
    if faults and raw.strip().startswith("["):
        try:
            initial = json.loads(raw)
        except ValueError:
            raise ConfigError(f"${FAULTS_ENV} must be 1 or a JSON list of faults; got {raw!r}") from None
    name = os.path.basename(model).removesuffix(".gguf")
    enc_name = os.path.basename(encoder.rstrip("/")) if encoder else "none"
    app = create_app(gen, enc, model_name=name, encoder_name=enc_name, faults=faults, initial_faults=initial,
                     batch_window_s=batch_window_s)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


if __name__ == "__main__":  # python -m recwise.llm._server --model smollm2 --port 8000
    import argparse
    import sys

    from recwise.llm.cli import add_serve_arguments, run_serve

    parser = argparse.ArgumentParser(prog="python -m recwise.llm._server")
    add_serve_arguments(parser)
    sys.exit(run_serve(parser.parse_args()))
