"""The llama.cpp generation backend: GGUF models through llama-cpp-python, fast on CPU.

The same GGUF files as :class:`~recwise.llm.LocalBackend` (``smollm2``, ``gemma3`` or a path)
run without de-quantizing: a load takes a fraction of a second (docs/llm.md has the measured table).

Two ways to decode many rows (option ``decoding``):

- ``"batched"`` (default): up to ``batch`` rows share one llama context, each on its own KV-cache
  stream, and one ``llama_decode`` call advances all of them by a token, so the weights are read
  once per step for the whole batch (``recwise.llm._llamacpp_batch``). ``parallel`` such contexts
  run side by side, fed longest prompt first.
- ``"pool"``: ``parallel`` contexts of one sequence each, through llama-cpp-python's own
  ``create_completion`` / ``create_chat_completion``.

Both give the same greedy texts: the batched decoder renders chats with the same chat handler and
copies the text loop of ``create_completion`` (stop strings, UTF-8 guard, ``max_tokens``), and
llama.cpp computes each row's logits independently of the rows beside it (tested). Sampling is
plain temperature + top-p in numpy (:class:`~recwise.llm._llamacpp_batch.RowSampler`) from the
row's own seeded stream, in both modes (the pool passes it to llama.cpp as a logits processor), so a
sample depends on neither the mode nor the rows around it. llama.cpp's extra samplers (top-k 40,
min-p 0.05, repeat penalty) are not used: ``temperature=0`` is argmax, as in the other backends.

``quant`` (opt-in, changes the outputs) re-quantizes the model once into
``$RECWISE_HOME/models/requantized/`` with a type whose CPU kernels are faster for batched work.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import importlib.util
import os
import queue
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from recwise.errors import ConfigError, DataError, DependencyError
from recwise.llm._generator import Completion, LLMError, Row, text_only
from recwise.llm._local import ModelSource, models_dir, resolve_model

__all__ = ["QUANT_TYPES", "LlamaCppBackend", "available_cores", "llama_cpp_available", "requantized"]

_INSTALL_HINT = "pip install llama-cpp-python (it builds from source: about 10-15 minutes on 2 cores)"

# Chat formats of llama-cpp-python for GGUF files that carry no chat template of their own.
_CHAT_FORMATS = {"gemma3": "gemma"}

# Re-quantization targets of option ``quant``: the name and llama.cpp's file type.
QUANT_TYPES = {"iq4_nl": "LLAMA_FTYPE_MOSTLY_IQ4_NL", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
               "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}
DEFAULT_BATCH = 64


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


def requantized(source: ModelSource, quant: str) -> Path:
    """The model re-quantized to ``quant`` (made once, atomically, under ``$RECWISE_HOME/models/requantized``)."""
    import llama_cpp

    src = source.folder / str(source.gguf_file)
    digest = hashlib.sha256(source.fingerprint.encode()).hexdigest()[:12]
    dst = models_dir() / "requantized" / f"{Path(str(source.gguf_file)).stem}-{digest}.{quant}.gguf"
    if dst.exists():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    params.allow_requantize = True
    params.nthread = available_cores()
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise DataError(f"llama.cpp could not re-quantize {src} to {quant} (code {rc})")
    os.replace(tmp, dst)
    return dst


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
        them longest prompt first. In batched decoding, a call with fewer rows than contexts
        (a single prompt, say) gives the working contexts all ``threads`` between them.
    context : int, default 4096
        Context window (prompt + new tokens) per row.
    gpu_layers : int, default 0
        Layers offloaded to a GPU (only with a CUDA build of llama-cpp-python; -1 = all).
    decoding : {"batched", "pool"}, default "batched"
        ``batched``: each context decodes up to ``batch`` rows together (one matrix-matrix step per
        token); ``pool``: one row per context through llama-cpp-python's ``create_completion``.
        Same greedy texts and same samples; batched is faster over many rows (docs/llm.md).
    batch : int, default 64
        Rows per context in batched decoding (fewer for long rows: at most 32768 KV cells a context).
    quant : {"iq4_nl", "q4_0", "q8_0"} or None, default None
        Opt-in: re-quantize the model once to this type (faster batched kernels on x86 for
        ``iq4_nl``). It changes the weights, hence the texts; it is part of the cache fingerprint.

    The model is loaded at the first :meth:`complete` call: a run whose answers are all in the
    cache never loads it.

    Examples
    --------
    >>> gen = Generator(LlamaCppBackend("smollm2"))                          # doctest: +SKIP
    >>> gen.complete([{"role": "user", "content": "Name one colour."}])     # doctest: +SKIP
    """

    name = "llamacpp"

    def __init__(self, model: str = "smollm2", *, threads: int | None = None, parallel: int | None = None,
                 context: int = 4096, gpu_layers: int = 0, decoding: str = "batched", batch: int | None = None,
                 quant: str | None = None) -> None:
        self.threads = _positive("threads", threads) or default_threads()
        self.parallel = min(_positive("parallel", parallel) or self.threads, self.threads)
        self.context = _positive("context", context) or 4096
        self.batch = _positive("batch", batch) or DEFAULT_BATCH
        if isinstance(gpu_layers, bool) or not isinstance(gpu_layers, int) or gpu_layers < -1:
            raise ConfigError(f"option 'gpu_layers' must be an int >= -1; got {gpu_layers!r}")
        if decoding not in ("batched", "pool"):
            raise ConfigError(f"option 'decoding' must be 'batched' or 'pool'; got {decoding!r}")
        if quant is not None and quant not in QUANT_TYPES:
            raise ConfigError(f"option 'quant' must be one of {sorted(QUANT_TYPES)} or None; got {quant!r}")
        self.gpu_layers = gpu_layers
        self.decoding = decoding
        self.quant = quant
        self.source: ModelSource = resolve_model(model)
        if self.source.gguf_file is None:
            raise ConfigError(f"the llamacpp backend runs .gguf files; {model!r} is a Hugging Face folder "
                              "(use backend 'transformers')")
        self.fingerprint = self.source.fingerprint + (f":requant-{quant}" if quant else "")
        self._pool: queue.SimpleQueue[Any] | None = None
        self._decoders: list[Any] = []
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
                if self.quant:
                    path = str(requantized(self.source, self.quant))
                per = max(1, self.threads // self.parallel)
                # batched decoding makes its own contexts: one Llama (tokenizer, chat handler,
                # weights) with a small context of its own is enough
                count = self.parallel if self.decoding == "pool" else 1
                n_ctx = self.context if self.decoding == "pool" else min(self.context, 512)
                pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
                try:
                    # llama.cpp logs some notices (e.g. Gemma's SWA cache) even with verbose=False
                    with suppress_stdout_stderr(disable=False):
                        contexts = [self._context(Llama, path, per, n_ctx) for _ in range(count)]
                    for ctx in contexts:
                        pool.put(ctx)
                        _OPEN.append(ctx)
                except ValueError as exc:
                    raise DataError(f"llama.cpp cannot load {path}: {exc}") from None
                self._llm = contexts[0]
                self._pool = pool
            return self._pool

    def _context(self, llama: Any, path: str, threads: int, n_ctx: int) -> Any:
        return llama(path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                     n_gpu_layers=self.gpu_layers, chat_format=_CHAT_FORMATS.get(self.source.label), verbose=False)

    def _one(self, row: Row) -> Completion:
        from recwise.llm._llamacpp_batch import RowSampler

        pool = self._contexts()
        llm = pool.get()
        try:
            p = row.params
            kw: dict[str, Any] = {
                "max_tokens": p.max_tokens,
                "temperature": 0.0,  # greedy over the logits, or over the one token RowSampler leaves
                "top_p": 1.0,
                "top_k": 0,
                "min_p": 0.0,
                "repeat_penalty": 1.0,
                "stop": list(p.stop) or None,
                "seed": 0,
            }
            if not p.greedy:
                from llama_cpp import LogitsProcessorList

                kw["logits_processor"] = LogitsProcessorList([RowSampler(p.temperature, p.top_p, row.seed)])
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

    def _pool_complete(self, rows: Sequence[Row]) -> list[Completion]:
        if self.parallel == 1 or len(rows) == 1:
            return [self._one(r) for r in rows]
        order = sorted(range(len(rows)), key=lambda i: -len(str(rows[i].prompt)))
        out: list[Completion | None] = [None] * len(rows)

        def work(i: int) -> None:
            out[i] = self._one(rows[i])

        with ThreadPoolExecutor(max_workers=min(self.parallel, len(rows))) as pool:
            list(pool.map(work, order))
        return [c for c in out if c is not None]

    def _batched_complete(self, rows: Sequence[Row]) -> list[Completion]:
        from recwise.llm._llamacpp_batch import MAX_CELLS, BatchDecoder, Feed, cells_for, prepare_row

        llm = self._llm
        prepared = [prepare_row(llm, i, r, self.context) for i, r in enumerate(rows)]
        cells = cells_for(prepared)
        workers = min(self.parallel, len(rows))
        width = max(1, min(self.batch, -(-len(rows) // workers), MAX_CELLS // cells))
        # fewer rows than contexts (one prompt, say): the working contexts share every thread
        per = max(1, self.threads // workers)
        from llama_cpp._utils import suppress_stdout_stderr

        with self._lock:
            for k in range(workers):
                dec = self._decoders[k] if k < len(self._decoders) else None
                if dec is None or dec.width < width or dec.cells < cells or dec.width > 2 * width:
                    if dec is not None:
                        dec.close()
                    with suppress_stdout_stderr(disable=False):
                        dec = BatchDecoder(llm, width, cells, per)
                    if k < len(self._decoders):
                        self._decoders[k] = dec
                    else:
                        self._decoders.append(dec)
                        _OPEN.append(dec)
            decoders = self._decoders[:workers]
            for dec in decoders:
                dec.set_threads(per)
        feed = Feed(prepared)
        if workers == 1:
            decoders[0].run(feed.take, feed.give)
        else:
            with ThreadPoolExecutor(max_workers=workers) as ex:
                for f in [ex.submit(d.run, feed.take, feed.give) for d in decoders]:
                    f.result()
        return [c for c in feed.out if c is not None]

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        """One completion per row: batched in shared contexts, or on the pool of contexts (option ``decoding``)."""
        self._contexts()
        if not rows:
            return []
        if self.decoding == "pool":
            return self._pool_complete(rows)
        return self._batched_complete(rows)
