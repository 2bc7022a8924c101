"""The LLM layer: text generation and text embeddings behind one interface, with a disk cache.

- :class:`Generator` (``generate``/``sample``): prompts or chats in, texts out, through a
  :class:`LlamaCppBackend` (GGUF models through llama.cpp: the default on CPU when
  llama-cpp-python is installed), a :class:`LocalBackend` (transformers: GGUF or Hugging Face
  folders, GPUs) or an :class:`HttpBackend` (any OpenAI-compatible server). Local models load at
  the first prompt the cache cannot answer.
- :class:`Encoder` (``encode``): texts in, unit-norm vectors out (all-MiniLM-L6-v2 locally,
  or a server's embeddings endpoint).
- :class:`LLMCache`: one SQLite file; a re-run makes zero model calls.
- Parsing helpers with bounded retries and a recorded fallback: :func:`ask_choice`,
  :func:`ask_json`, :func:`ask_number`, :func:`ask_latlon`, :func:`ask_reasoning`.
- ``recwise llm serve`` exposes the local backend as an OpenAI-compatible server.

Heavy dependencies (torch model loading, transformers, sentence-transformers, httpx,
FastAPI) are imported only when a backend or the server is built.
"""

from __future__ import annotations

from recwise.llm._cache import CacheStats, LLMCache, cache_key, default_cache_path
from recwise.llm._encoder import Encoder, EncoderBackend, LocalEncoderBackend, l2_normalise
from recwise.llm._factory import EncoderConfig, GeneratorConfig, choose_local_backend, load_encoder, load_generator
from recwise.llm._generator import (
    Backend,
    Completion,
    CountingBackend,
    GenerationParams,
    Generator,
    LLMError,
    Message,
    Prompt,
    Row,
    Usage,
    counted,
    image_part,
    params_from_mapping,
)
from recwise.llm._http import HttpBackend, HttpClient, HttpEncoderBackend
from recwise.llm._llamacpp import LlamaCppBackend, llama_cpp_available
from recwise.llm._local import LocalBackend, resolve_model, select_device
from recwise.llm._parse import (
    LATLON_REMINDER,
    ParseResult,
    Reasoning,
    ask,
    ask_choice,
    ask_json,
    ask_latlon,
    ask_number,
    ask_reasoning,
    parse_choice,
    parse_json,
    parse_latlon,
    parse_number,
    parse_reasoning,
    validate_schema,
    with_reminder,
)

__all__ = [
    "Backend",
    "CacheStats",
    "Completion",
    "CountingBackend",
    "Encoder",
    "EncoderBackend",
    "EncoderConfig",
    "GenerationParams",
    "Generator",
    "GeneratorConfig",
    "HttpBackend",
    "HttpClient",
    "HttpEncoderBackend",
    "LATLON_REMINDER",
    "LLMCache",
    "LLMError",
    "LlamaCppBackend",
    "LocalBackend",
    "LocalEncoderBackend",
    "Message",
    "ParseResult",
    "Prompt",
    "Reasoning",
    "Row",
    "Usage",
    "ask",
    "ask_choice",
    "ask_json",
    "ask_latlon",
    "ask_number",
    "ask_reasoning",
    "cache_key",
    "choose_local_backend",
    "counted",
    "default_cache_path",
    "image_part",
    "l2_normalise",
    "llama_cpp_available",
    "load_encoder",
    "load_generator",
    "params_from_mapping",
    "parse_choice",
    "parse_json",
    "parse_latlon",
    "parse_number",
    "parse_reasoning",
    "resolve_model",
    "select_device",
    "validate_schema",
    "with_reminder",
]
