"""The llama.cpp generation backend: GGUF models through llama-cpp-python, fast on CPU.

The same GGUF files as :class:`~recwise.llm.LocalBackend` (``smollm2``, ``gemma3`` or a path)
run without de-quantizing: a load takes a fraction of a second and SmolLM2-135M decodes about
six times faster than through transformers on one core (docs/llm.md has the measured table).

llama.cpp decodes one sequence per context. Throughput over many rows comes from a small pool of
contexts (``parallel``), each with its own threads, fed longest prompt first: on a 2-core machine
two contexts of one thread each beat one context of two threads. The model file is memory-mapped,
so the contexts share one copy of the weights.

Rows go through llama-cpp-python's own ``create_completion`` (plain text) and
``create_chat_completion`` (chats, rendered with the chat template stored in the GGUF file), the
same code that its OpenAI-compatible server (``python -m llama_cpp.server``) runs, so a local run
and a served one give the same greedy text. Sampling is plain temperature + top-p: llama.cpp's
extra samplers (top-k 40, min-p 0.05, repeat penalty) are switched off so that ``temperature=0``
means argmax, as in the other backends. Each sampled row is seeded on its own (the row seed,
reduced to 32 bits), so a sample does not depend on the rows around it.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import queue
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from recwise.errors import ConfigError, DataError, DependencyError
from recwise.llm._generator import Completion, LLMError, Row, text_only
from recwise.llm._local import ModelSource, resolve_model

__all__ = ["LlamaCppBackend", "available_cores", "llama_cpp_available"]

_INSTALL_HINT = "pip install llama-cpp-python (it builds from source: about 10-15 minutes on 2 cores)"

# Chat formats of llama-cpp-python for GGUF files that carry no chat template of their own.
_CHAT_FORMATS = {"gemma3": "gemma"}


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python is installed (checked without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """torch's thread count when torch is loaded (a grid cell's budget), else every core this process may use."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    return available_cores()


_OPEN: list[Any] = []  # every loaded context, closed at exit while the modules they need still exist


@atexit.register
def _close_all() -> None:
    # Without this, llama-cpp-python's __del__ runs during interpreter teardown (after modules
    # it calls are gone) and prints a TypeError traceback when torch was also loaded.
    while _OPEN:
        try:
            _OPEN.pop().close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"option '{name}' must be an int >= 1; got {value!r}")
    return value


class LlamaCppBackend:
    """Generate with a GGUF model through llama.cpp.

    Parameters
    ----------
    model : str, default "smollm2"
        ``smollm2``, ``gemma3`` or a ``.gguf`` file.
    threads : int, optional
        CPU threads in all; default torch's thread count when torch is loaded (inside a grid cell:
        the cell's threads), else every core this process may use.
    parallel : int, optional
        Contexts decoding at once; default ``threads`` (one thread each). Rows are spread over
        them longest first.
    context : int, default 4096
        Context window (prompt + new tokens) per row.
    gpu_layers : int, default 0
        Layers offloaded to a GPU (only with a CUDA build of llama-cpp-python; -1 = all).

    The model is loaded at the first :meth:`complete` call: a run whose answers are all in the
    cache never loads it.

    Examples
    --------
    >>> gen = Generator(LlamaCppBackend("smollm2"))                          # doctest: +SKIP
    >>> gen.complete([{"role": "user", "content": "Name one colour."}])     # doctest: +SKIP
    """

    name = "llamacpp"

    def __init__(self, model: str = "smollm2", *, threads: int | None = None, parallel: int | None = None,
                 context: int = 4096, gpu_layers: int = 0) -> None:
        self.threads = _positive("threads", threads) or default_threads()
        self.parallel = min(_positive("parallel", parallel) or self.threads, self.threads)
        self.context = _positive("context", context) or 4096
        if isinstance(gpu_layers, bool) or not isinstance(gpu_layers, int) or gpu_layers < -1:
            raise ConfigError(f"option 'gpu_layers' must be an int >= -1; got {gpu_layers!r}")
        self.gpu_layers = gpu_layers
        self.source: ModelSource = resolve_model(model)
        if self.source.gguf_file is None:
            raise ConfigError(f"the llamacpp backend runs .gguf files; {model!r} is a Hugging Face folder "
                              "(use backend 'transformers')")
        self.fingerprint = self.source.fingerprint
        self._pool: queue.SimpleQueue[Any] | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (it is, from the first cache miss on)."""
        return self._pool is not None

    def _contexts(self) -> queue.SimpleQueue[Any]:
        with self._lock:
            if self._pool is None:
                if not llama_cpp_available():
                    raise DependencyError(f"the llamacpp backend needs llama-cpp-python: {_INSTALL_HINT}")
                from llama_cpp import Llama
                from llama_cpp._utils import suppress_stdout_stderr

                path = str(self.source.folder / str(self.source.gguf_file))
                per = max(1, self.threads // self.parallel)
                pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
                try:
                    # llama.cpp logs some notices (e.g. Gemma's SWA cache) even with verbose=False
                    with suppress_stdout_stderr(disable=False):
                        contexts = [self._context(Llama, path, per) for _ in range(self.parallel)]
                    for ctx in contexts:
                        pool.put(ctx)
                        _OPEN.append(ctx)
                except ValueError as exc:
                    raise DataError(f"llama.cpp cannot load {path}: {exc}") from None
                self._pool = pool
            return self._pool

    def _context(self, llama: Any, path: str, threads: int) -> Any:
        return llama(path, n_ctx=self.context, n_threads=threads, n_threads_batch=threads,
                     n_gpu_layers=self.gpu_layers, chat_format=_CHAT_FORMATS.get(self.source.label), verbose=False)

    def _one(self, row: Row) -> Completion:
        pool = self._contexts()
        llm = pool.get()
        try:
            p = row.params
            kw: dict[str, Any] = {
                "max_tokens": p.max_tokens,
                "temperature": float(p.temperature),
                "top_p": 1.0 if p.greedy else float(p.top_p),
                "top_k": 0,
                "min_p": 0.0,
                "repeat_penalty": 1.0,
                "stop": list(p.stop) or None,
                "seed": 0 if p.greedy else row.seed % 2**32,
            }
            try:
                if isinstance(row.prompt, str):
                    out = llm.create_completion(row.prompt, **kw)
                    text = out["choices"][0]["text"]
                else:
                    out = llm.create_chat_completion(messages=text_only(row.prompt, "llamacpp"), **kw)
                    text = out["choices"][0]["message"]["content"] or ""
            except ValueError as exc:  # e.g. "Requested tokens (5000) exceed context window of 4096"
                raise LLMError(f"llama.cpp: {exc} (raise option 'context' or shorten the prompt)") from None
            usage = out.get("usage") or {}
            return Completion(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                              str(out["choices"][0].get("finish_reason") or "stop"))
        finally:
            pool.put(llm)

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        """One completion per row; rows run on the pool of contexts, longest prompt first."""
        self._contexts()
        if self.parallel == 1 or len(rows) == 1:
            return [self._one(r) for r in rows]
        order = sorted(range(len(rows)), key=lambda i: -len(str(rows[i].prompt)))
        out: list[Completion | None] = [None] * len(rows)

        def work(i: int) -> None:
            out[i] = self._one(rows[i])

        with ThreadPoolExecutor(max_workers=min(self.parallel, len(rows))) as pool:
            list(pool.map(work, order))
        return [c for c in out if c is not None]
