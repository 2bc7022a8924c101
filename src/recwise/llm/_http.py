"""The HTTP backend: any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, hosted APIs).

Chat prompts go to ``POST {base_url}/chat/completions``, plain prompts to
``POST {base_url}/completions`` (or to chat, as one user message, with
``plain_endpoint="chat"``), texts to ``POST {base_url}/embeddings``. ``base_url``
includes the version prefix, e.g. ``http://127.0.0.1:8000/v1``.

Failures are retried a bounded number of times: connection errors, timeouts, HTTP 429
and 5xx, and bodies that are not the expected JSON. The wait before retry ``k`` (from 0)
is ``backoff_s * 2**k`` (capped at ``max_backoff_s``, plus up to 10% jitter), or the
server's ``Retry-After`` if that is longer; a ``Retry-After`` above ``max_retry_after_s``
fails at once instead of waiting. Other 4xx answers fail at once. Rows run on at most
``concurrency`` threads.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from recwise.errors import ConfigError, DependencyError
from recwise.llm._generator import Completion, LLMError, Row
from recwise.llm._local import _cut_at_stop

__all__ = ["HttpBackend", "HttpClient", "HttpEncoderBackend"]

ENV_BASE_URL = "RECWISE_LLM_BASE_URL"
ENV_MODEL = "RECWISE_LLM_MODEL"
ENV_API_KEY = "RECWISE_LLM_API_KEY"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """A JSON-over-HTTP client with timeouts, bounded retries, backoff and Retry-After.

    Parameters
    ----------
    base_url : str, optional
        Server URL including ``/v1``; default ``$RECWISE_LLM_BASE_URL`` or ``$OPENAI_BASE_URL``.
    api_key : str, optional
        Bearer token; default ``$RECWISE_LLM_API_KEY`` or ``$OPENAI_API_KEY`` (none is sent if unset).
    timeout_s : float, default 60.0
        Per-request timeout (connect, read, write).
    max_retries : int, default 3
        Retries after the first attempt; 0 means one attempt only.
    backoff_s : float, default 0.5
        First backoff wait.
    max_backoff_s : float, default 20.0
        Cap of the exponential backoff.
    max_retry_after_s : float, default 60.0
        Longest Retry-After honoured; a longer one fails at once.
    concurrency : int, default 4
        Requests in flight at once.

    Attributes
    ----------
    attempts : int
        HTTP requests sent (first tries and retries).
    waits : list of float
        Every wait before a retry, in seconds.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        max_retry_after_s: float = 60.0,
        concurrency: int = 4,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise DependencyError("the HTTP backend needs httpx: pip install 'recwise[llm]'") from None
        base_url = base_url or os.environ.get(ENV_BASE_URL) or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ConfigError(f"the HTTP backend needs a base URL: pass base_url or set {ENV_BASE_URL}")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"option 'base_url' must start with http:// or https://; got {base_url!r}")
        for name, value, low in (
            ("timeout_s", timeout_s, 0.0),
            ("backoff_s", backoff_s, 0.0),
            ("max_backoff_s", max_backoff_s, 0.0),
            ("max_retry_after_s", max_retry_after_s, 0.0),
        ):
            if not isinstance(value, (int, float)) or value < low or (name == "timeout_s" and value == 0):
                raise ConfigError(f"option '{name}' must be a number > 0; got {value!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 20:
            raise ConfigError(f"option 'max_retries' must be an int in [0, 20]; got {max_retries!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"option 'concurrency' must be an int >= 1; got {concurrency!r}")
        self.base_url = base_url.rstrip("/")
        key = api_key or os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.concurrency = concurrency
        self._httpx = httpx
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._count_lock = threading.Lock()
        self.attempts = 0
        self.waits: list[float] = []

    def post(self, path: str, body: dict[str, Any], check: Any) -> Any:
        """POST ``body`` as JSON; return ``check(json)`` (which raises KeyError/TypeError/ValueError on bad shape)."""
        httpx = self._httpx
        url = f"{self.base_url}/{path.lstrip('/')}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff_s, self.backoff_s * 2**attempt)
            wait += random.uniform(0, 0.1 * wait)
            with self._count_lock:
                self.attempts += 1
            try:
                resp = self._client.post(url, json=body, headers=self._headers)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout_s:g} s"
            except httpx.TransportError as exc:
                last = f"cannot connect ({type(exc).__name__}: {exc})"
            else:
                code = resp.status_code
                if code == 429 or code >= 500:
                    last = f"HTTP {code}"
                    after = _retry_after(resp.headers.get("Retry-After"))
                    if after is not None:
                        if after > self.max_retry_after_s:
                            raise LLMError(
                                f"{url}: HTTP {code} with Retry-After {after:g} s, above max_retry_after_s="
                                f"{self.max_retry_after_s:g}; retry later or raise the limit"
                            )
                        wait = max(wait, after)
                elif code >= 400:
                    raise LLMError(f"{url}: HTTP {code}: {resp.text[:200]!r}; check the model name, key and request")
                else:
                    try:
                        return check(resp.json())
                    except (ValueError, KeyError, TypeError, IndexError) as exc:
                        last = f"malformed response ({type(exc).__name__}: {str(exc)[:80]})"
            if attempt == self.max_retries:
                break
            with self._count_lock:
                self.waits.append(wait)
            time.sleep(wait)
        raise LLMError(f"{url}: {last}; gave up after {self.max_retries + 1} attempts")

    def close(self) -> None:
        self._client.close()


def _env_model(model: str | None) -> str:
    model = model or os.environ.get(ENV_MODEL)
    if not model:
        raise ConfigError(f"the HTTP backend needs a model name: pass model or set {ENV_MODEL}")
    return model


def _extra_body(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"option 'extra_body' must be a JSON object; {exc}") from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"option 'extra_body' must be a JSON object; got {value!r}")
    return dict(value)


class HttpBackend:
    """Generate through an OpenAI-compatible server.

    Parameters
    ----------
    model : str, optional
        Model name the server knows; default ``$RECWISE_LLM_MODEL``.
    client : HttpClient, optional
        Connection settings; by default built from ``client_options``.
    plain_endpoint : {"completions", "chat"}, default "completions"
        Where plain-text prompts go.
    extra_body : str or mapping, optional
        A JSON object merged into every request body: server-specific options, such as
        ``{"repeat_penalty": 1.0}`` for llama.cpp's server.
    **client_options
        Passed to :class:`HttpClient` (base_url, api_key, timeout_s, max_retries, ...).

    Examples
    --------
    >>> backend = HttpBackend("smollm2", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
    """

    name = "http"

    def __init__(
        self,
        model: str | None = None,
        *,
        client: HttpClient | None = None,
        plain_endpoint: str = "completions",
        extra_body: str | Mapping[str, Any] | None = None,
        **client_options: Any,
    ) -> None:
        if plain_endpoint not in ("completions", "chat"):
            raise ConfigError(f"option 'plain_endpoint' must be 'completions' or 'chat'; got {plain_endpoint!r}")
        self.extra_body = _extra_body(extra_body)
        self.model = _env_model(model)
        self.client = client or HttpClient(**client_options)
        self.plain_endpoint = plain_endpoint
        self.fingerprint = f"{self.model}@{self.client.base_url}"
        if self.extra_body:  # options that change the output are part of the cache key
            self.fingerprint += json.dumps(self.extra_body, sort_keys=True, separators=(",", ":"))

    def _one(self, row: Row) -> Completion:
        p = row.params
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "n": 1,
            **self.extra_body,
        }
        if not p.greedy:
            body["seed"] = row.seed
        if p.stop:
            body["stop"] = list(p.stop)
        chat = not isinstance(row.prompt, str) or self.plain_endpoint == "chat"
        if chat:
            messages = [{"role": "user", "content": row.prompt}] if isinstance(row.prompt, str) else list(row.prompt)
            body["messages"] = [dict(m) for m in messages]
            path = "chat/completions"

            def check(data: Any) -> Completion:
                choice = data["choices"][0]
                return _completion(choice["message"]["content"], choice, data)
        else:
            body["prompt"] = row.prompt
            path = "completions"

            def check(data: Any) -> Completion:
                choice = data["choices"][0]
                return _completion(choice["text"], choice, data)

        done = self.client.post(path, body, check)
        cut = _cut_at_stop(done.text, p.stop)
        return done if cut is None else Completion(cut, done.prompt_tokens, done.completion_tokens, "stop")

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        if len(rows) == 1 or self.client.concurrency == 1:
            return [self._one(r) for r in rows]
        with ThreadPoolExecutor(max_workers=min(self.client.concurrency, len(rows))) as pool:
            return list(pool.map(self._one, rows))


def _completion(text: Any, choice: Any, data: Any) -> Completion:
    if not isinstance(text, str):
        raise TypeError(f"text is {type(text).__name__}, not str")
    usage = data.get("usage") or {}
    return Completion(
        text,
        int(usage.get("prompt_tokens", 0) or 0),
        int(usage.get("completion_tokens", 0) or 0),
        str(choice.get("finish_reason") or "stop"),
    )


class HttpEncoderBackend:
    """Embed through an OpenAI-compatible ``/embeddings`` endpoint.

    Parameters
    ----------
    model : str, optional
        Embedding model name; default ``$RECWISE_LLM_MODEL``.
    client : HttpClient, optional
    **client_options
        Passed to :class:`HttpClient`.
    """

    name = "http"

    def __init__(self, model: str | None = None, *, client: HttpClient | None = None, **client_options: Any) -> None:
        self.model = _env_model(model)
        self.client = client or HttpClient(**client_options)
        self.fingerprint = f"{self.model}@{self.client.base_url}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        def check(data: Any) -> np.ndarray:
            items = sorted(data["data"], key=lambda d: d["index"])
            if len(items) != len(texts):
                raise ValueError(f"{len(items)} embeddings for {len(texts)} texts")
            return np.asarray([d["embedding"] for d in items], dtype=np.float32)

        return self.client.post("embeddings", {"model": self.model, "input": list(texts)}, check)
