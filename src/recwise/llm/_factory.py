"""Typed configs and the two entry points, :func:`load_generator` and :func:`load_encoder`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recwise.config import config_from_dict
from recwise.errors import ConfigError
from recwise.llm._cache import LLMCache

__all__ = ["EncoderConfig", "GeneratorConfig", "choose_local_backend", "cuda_present", "load_encoder",
           "load_generator"]


@dataclass(frozen=True)
class GeneratorConfig:
    """How to build a :class:`~recwise.llm.Generator`.

    Parameters
    ----------
    backend : {"local", "llamacpp", "transformers", "http"}, default "local"
        ``local`` picks a local backend with :func:`choose_local_backend`: llama.cpp for a GGUF
        model on CPU when llama-cpp-python is installed, transformers otherwise (a Hugging Face
        folder, a GPU, or no llama-cpp-python). ``$RECWISE_LLM_BACKEND`` overrides that choice.
    model : str or None, default None
        Local: ``smollm2`` (the default), ``gemma3``, a ``.gguf`` file or a HF folder. HTTP: the
        server's model name (default ``$RECWISE_LLM_MODEL``).
    device : {"auto", "cpu", "cuda"}, default "auto"
        Local backends only.
    batch_size : int, default 8
        transformers backend: rows per forward batch.
    dtype : {"float32", "bfloat16", "float16"} or None, default None
        transformers backend: cast the weights (None: as loaded). ``bfloat16`` on an AMX CPU makes
        long prompts several times faster (docs/llm.md); part of the cache fingerprint. With
        ``backend="local"`` a dtype selects transformers; with llama.cpp or HTTP it is an error.
    threads, parallel : int or None
        llama.cpp backend: CPU threads in all (default: every core this process may use) and
        contexts decoding at once (default: one per thread).
    context : int, default 4096
        llama.cpp backend: context window per row.
    decoding, batch : str, int or None
        llama.cpp backend: ``"batched"`` (default; up to ``batch`` rows, default 64, decoded
        together in one context) or ``"pool"`` (one row per context).
    quant : str or None, default None
        llama.cpp backend, opt-in: re-quantize the model once (``"iq4_nl"``, ``"q4_0"``,
        ``"q8_0"``) for faster CPU kernels; changes the texts (and the cache fingerprint).
    base_url, api_key : str or None
        HTTP backend; default from ``$RECWISE_LLM_BASE_URL`` / ``$RECWISE_LLM_API_KEY``.
    timeout_s, max_retries, backoff_s, max_retry_after_s, concurrency
        HTTP backend; see :class:`~recwise.llm.HttpClient`.
    plain_endpoint : {"completions", "chat"}, default "completions"
        HTTP backend: where plain-text prompts go.
    extra_body : str or None
        HTTP backend: a JSON object merged into every request (server-specific sampling options,
        e.g. ``{"repeat_penalty": 1.0}`` for llama.cpp's server, whose default is 1.1).
    cache : bool, default True
        Use the disk cache.
    cache_path : str or None
        Cache file; default ``$RECWISE_HOME/llm-cache.sqlite``.
    """

    backend: Literal["local", "llamacpp", "transformers", "http"] = "local"
    model: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = 8
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    threads: int | None = None
    parallel: int | None = None
    context: int = 4096
    decoding: Literal["batched", "pool"] = "batched"
    batch: int | None = None
    quant: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5
    max_retry_after_s: float = 60.0
    concurrency: int = 4
    plain_endpoint: Literal["completions", "chat"] = "completions"
    extra_body: str | None = None
    cache: bool = True
    cache_path: str | None = None


@dataclass(frozen=True)
class EncoderConfig:
    """How to build an :class:`~recwise.llm.Encoder` (fields as in :class:`GeneratorConfig`).

    ``model`` defaults to ``minilm`` (all-MiniLM-L6-v2) locally and to ``$RECWISE_LLM_MODEL``
    over HTTP; ``batch_size`` to 64;
    ``show_progress`` shows a progress bar over batches.
    """

    backend: Literal["local", "http"] = "local"
    model: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = 64
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5
    max_retry_after_s: float = 60.0
    concurrency: int = 4
    show_progress: bool = True
    cache: bool = True
    cache_path: str | None = None


def _as_config(cls: Any, config: Any, overrides: Mapping[str, Any]) -> Any:
    if config is None:
        return config_from_dict(cls, dict(overrides))
    if isinstance(config, Mapping):
        return config_from_dict(cls, {**config, **overrides})
    if overrides:
        from recwise.config import replace

        return replace(config, **overrides)
    return config


def _http_options(cfg: GeneratorConfig | EncoderConfig) -> dict[str, Any]:
    return {
        "base_url": cfg.base_url,
        "api_key": cfg.api_key,
        "timeout_s": cfg.timeout_s,
        "max_retries": cfg.max_retries,
        "backoff_s": cfg.backoff_s,
        "max_retry_after_s": cfg.max_retry_after_s,
        "concurrency": cfg.concurrency,
    }


def cuda_present() -> bool:
    """Whether a CUDA device is visible, answered without importing torch when it is not loaded yet."""
    import sys

    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def choose_local_backend(model: str | None, device: str = "auto") -> str:
    """``"llamacpp"`` or ``"transformers"``: which local backend runs ``model`` on ``device``.

    llama.cpp for a GGUF model (``smollm2``, ``gemma3``, a ``.gguf`` path) on CPU when
    llama-cpp-python is installed; transformers for a Hugging Face folder, for a GPU and as the
    fallback. ``$RECWISE_LLM_BACKEND`` (``llamacpp`` or ``transformers``) overrides the choice.
    Nothing heavy is imported or loaded.
    """
    forced = os.environ.get("RECWISE_LLM_BACKEND")
    if forced:
        if forced not in ("llamacpp", "transformers"):
            raise ConfigError(f"$RECWISE_LLM_BACKEND must be 'llamacpp' or 'transformers'; got {forced!r}")
        return forced
    from recwise.llm._llamacpp import llama_cpp_available

    name = model or "smollm2"
    gguf = name in ("smollm2", "gemma3") or name.endswith(".gguf")
    on_gpu = device == "cuda" or (device == "auto" and cuda_present())
    return "llamacpp" if gguf and not on_gpu and llama_cpp_available() else "transformers"


def load_generator(config: GeneratorConfig | Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    """Build a :class:`~recwise.llm.Generator` from a config (object, dict or keyword overrides).

    Nothing is loaded here: a local model is loaded at the first prompt that the cache cannot
    answer.

    Examples
    --------
    >>> gen = load_generator(model="smollm2", cache_path="/tmp/c.sqlite")  # doctest: +SKIP
    """
    from recwise.llm._generator import Generator

    cfg: GeneratorConfig = _as_config(GeneratorConfig, config, overrides)
    backend: Any
    kind = choose_local_backend(cfg.model, cfg.device) if cfg.backend == "local" else cfg.backend
    if cfg.dtype is not None:  # a dtype is the transformers backend's option: never silently ignored
        if cfg.backend == "local":
            kind = "transformers"
        elif kind != "transformers":
            raise ConfigError(f"option 'dtype' applies to the transformers backend, not {kind!r}; "
                              "use backend 'transformers' (or 'local') or drop the dtype")
    if kind == "llamacpp":
        from recwise.llm._llamacpp import LlamaCppBackend

        backend = LlamaCppBackend(cfg.model or "smollm2", threads=cfg.threads, parallel=cfg.parallel,
                                  context=cfg.context, gpu_layers=-1 if cfg.device == "cuda" else 0,
                                  decoding=cfg.decoding, batch=cfg.batch, quant=cfg.quant)
    elif kind == "transformers":
        from recwise.llm._local import LocalBackend

        backend = LocalBackend(cfg.model or "smollm2", device=cfg.device, batch_size=cfg.batch_size, dtype=cfg.dtype)
    else:
        from recwise.llm._http import HttpBackend

        backend = HttpBackend(cfg.model or None, plain_endpoint=cfg.plain_endpoint, extra_body=cfg.extra_body,
                              **_http_options(cfg))
    return Generator(backend, LLMCache(cfg.cache_path) if cfg.cache else None)


def load_encoder(config: EncoderConfig | Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    """Build an :class:`~recwise.llm.Encoder` from a config (object, dict or keyword overrides)."""
    from recwise.llm._encoder import Encoder

    cfg: EncoderConfig = _as_config(EncoderConfig, config, overrides)
    backend: Any
    if cfg.backend == "local":
        from recwise.llm._encoder import LocalEncoderBackend

        backend = LocalEncoderBackend(cfg.model or "minilm", device=cfg.device, batch_size=cfg.batch_size)
    else:
        from recwise.llm._http import HttpEncoderBackend

        backend = HttpEncoderBackend(cfg.model or None, **_http_options(cfg))
    cache = LLMCache(cfg.cache_path) if cfg.cache else None
    return Encoder(backend, cache, batch_size=cfg.batch_size, show_progress=cfg.show_progress)
