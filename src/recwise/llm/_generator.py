"""The ``Generator`` interface: prompts in, texts out, every call through the disk cache.

A prompt is either plain text (continued as is) or a chat: a sequence of
``{"role": ..., "content": ...}`` messages. A backend turns *rows* into completions,
one row per (prompt, sample) pair with its own seed, so that a sample is a pure
function of (backend, model, prompt, parameters, sample index) and can be cached
on its own: asking for ``n=4`` after ``n=2`` reuses the first two samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from recwise.errors import ConfigError, RecwiseError
from recwise.llm._cache import LLMCache, cache_key

__all__ = [
    "Backend",
    "CountingBackend",
    "Usage",
    "counted",
    "image_part",
    "text_only",
    "Completion",
    "GenerationParams",
    "Generator",
    "LLMError",
    "Message",
    "Prompt",
    "Row",
    "normalise_prompt",
    "params_from_mapping",
    "row_seed",
]

Message = Mapping[str, Any]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": ...}``.

``content`` is a str, or (for a vision model behind the HTTP backend) a list of OpenAI-style parts:
``{"type": "text", "text": str}`` and ``{"type": "image_url", "image_url": {"url": str}}`` (an
``https://`` or ``data:image/...;base64,`` URL; :func:`image_part` builds one from a file)."""

Prompt = str | Sequence[Message]
"""Plain text, or a chat given as a sequence of messages."""

_ROLES = ("system", "user", "assistant")


class LLMError(RecwiseError):
    """A model backend failed (server unreachable, retries spent, bad response)."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters of one generate call.

    Parameters
    ----------
    temperature : float, default 0.0
        0 means greedy decoding (seed and sample index are then ignored).
    top_p : float, default 1.0
        Nucleus sampling mass, in (0, 1].
    max_tokens : int, default 64
        Most new tokens per text.
    stop : tuple of str, default ()
        Generation ends at the first of these strings; it is not part of the text.
    seed : int, default 0
        Seeds sample ``i`` with :func:`row_seed` ``(seed, i)``: same seed, same samples.
    n : int, default 1
        Samples per prompt.

    Examples
    --------
    >>> GenerationParams(temperature=0.7, n=3, seed=1).n
    3
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int = 0
    n: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature <= 5.0):
            raise ConfigError(f"option 'temperature' must be a number in [0, 5]; got {self.temperature!r}")
        if not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            raise ConfigError(f"option 'top_p' must be a number in (0, 1]; got {self.top_p!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ConfigError(f"option 'max_tokens' must be an int >= 1; got {self.max_tokens!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"option 'n' must be an int >= 1; got {self.n!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"option 'seed' must be an int; got {self.seed!r}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"option 'stop' must be a tuple of non-empty strings; got {self.stop!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Row:
    """One unit of work for a backend: a prompt, the parameters, and this sample's seed."""

    prompt: Prompt
    params: GenerationParams
    seed: int


@dataclass(frozen=True)
class Completion:
    """A backend's answer to one row."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


@runtime_checkable
class Backend(Protocol):
    """What a generation backend provides. ``fingerprint`` names the exact weights or server model."""

    name: str
    fingerprint: str

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        """Return one completion per row, in order."""
        ...


def _check_content(i: int, content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, Sequence) or not content:
        raise ConfigError(f"message {i}: content must be a str or a non-empty list of parts; got {content!r}")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and set(part) == {"type", "text"} and isinstance(part["text"], str):
            parts.append({"type": "text", "text": part["text"]})
        elif (kind == "image_url" and set(part) == {"type", "image_url"} and isinstance(part["image_url"], Mapping)
              and isinstance(part["image_url"].get("url"), str)):
            parts.append({"type": "image_url", "image_url": dict(part["image_url"])})
        else:
            raise ConfigError(f"message {i}: a content part must be {{'type': 'text', 'text': str}} or "
                              f"{{'type': 'image_url', 'image_url': {{'url': str}}}}; got {part!r}")
    return parts


def normalise_prompt(prompt: Prompt) -> str | list[dict[str, Any]]:
    """Check a prompt and return it as a str or a list of plain ``{"role", "content"}`` dicts."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, Sequence) or not prompt:
        raise ConfigError(f"a prompt must be a str or a non-empty list of messages; got {type(prompt).__name__}")
    out = []
    for i, msg in enumerate(prompt):
        if not isinstance(msg, Mapping) or set(msg) != {"role", "content"}:
            raise ConfigError(f"message {i} must be a mapping with exactly 'role' and 'content'; got {msg!r}")
        if msg["role"] not in _ROLES:
            raise ConfigError(f"message {i}: role must be one of {list(_ROLES)}; got {msg!r}")
        out.append({"role": str(msg["role"]), "content": _check_content(i, msg["content"])})
    return out


def text_only(messages: Sequence[Message], backend: str) -> list[dict[str, str]]:
    """Messages whose content is plain text (text parts joined); an image part is a ConfigError naming ``backend``."""
    out = []
    for m in messages:
        content = m["content"]
        if not isinstance(content, str):
            if any(p["type"] != "text" for p in content):
                raise ConfigError(f"the {backend} backend runs text-only models; a message with an image needs a "
                                  "vision model behind the HTTP backend (backend='http')")
            content = "\n".join(p["text"] for p in content)
        out.append({"role": str(m["role"]), "content": content})
    return out


def image_part(path: str | Path, *, detail: str | None = None) -> dict[str, Any]:
    """An OpenAI-style image content part holding the file as a base64 ``data:`` URL.

    >>> msg = {"role": "user", "content": [{"type": "text", "text": "Where was this taken?"},
    ...                                    image_part("photo.jpg")]}          # doctest: +SKIP
    """
    import base64
    import mimetypes

    from recwise.errors import DataError

    path = Path(path)
    mime = mimetypes.guess_type(path.name)[0] or ""
    if not mime.startswith("image/"):
        raise ConfigError(f"{path}: not an image file name (expected .jpg, .png, .webp, ...)")
    try:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image ({exc.strerror})") from None
    url: dict[str, Any] = {"url": f"data:{mime};base64,{data}"}
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


def row_seed(seed: int, sample: int) -> int:
    """The seed of sample ``sample`` under the call seed ``seed`` (stable across runs, 63 bits)."""
    digest = hashlib.sha256(f"{seed}:{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class Generator:
    """Text generation through one backend and the disk cache.

    Parameters
    ----------
    backend : Backend
        A :class:`~recwise.llm.LocalBackend`, :class:`~recwise.llm.HttpBackend` or any object
        with ``name``, ``fingerprint`` and ``complete(rows)``.
    cache : LLMCache or None
        The cache; ``None`` disables caching.

    Attributes
    ----------
    save_every : int
        Rows per backend call (default 64): the cache is written after each call, so a run killed
        in the middle of a long batch keeps what it generated and a re-run generates only the rest.
        Rows go to the backend longest prompt first.
    backend_calls : int
        How many rows were sent to the backend (cache misses) by this object.

    Examples
    --------
    >>> gen = load_generator()                                    # doctest: +SKIP
    >>> gen.generate(["The capital of France is"], GenerationParams(max_tokens=8))  # doctest: +SKIP
    [' Paris...']
    """

    backend: Backend
    cache: LLMCache | None = None
    save_every: int = 64
    backend_calls: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.save_every, bool) or not isinstance(self.save_every, int) or self.save_every < 1:
            raise ConfigError(f"Generator save_every must be an int >= 1; got {self.save_every!r}")

    def _key(self, prompt: str | list[dict[str, str]], params: GenerationParams, sample: int) -> str:
        doc: dict[str, Any] = {
            "kind": "generate",
            "backend": self.backend.name,
            "model": self.backend.fingerprint,
            "prompt": prompt,
            "temperature": float(params.temperature),
            "top_p": float(params.top_p) if not params.greedy else 1.0,
            "max_tokens": params.max_tokens,
            "stop": list(params.stop),
        }
        if not params.greedy:  # greedy output does not depend on seed or sample index
            doc["seed"] = row_seed(params.seed, sample)
        return cache_key(doc)

    def sample(self, prompts: Sequence[Prompt], params: GenerationParams | None = None) -> list[list[str]]:
        """Return ``params.n`` texts per prompt.

        Parameters
        ----------
        prompts : sequence of Prompt
            Plain strings and/or chats (lists of messages).
        params : GenerationParams, optional
            Defaults to greedy, 64 tokens, n=1.

        Returns
        -------
        list of list of str
            ``out[i][j]`` is sample ``j`` of prompt ``i``.
        """
        params = params or GenerationParams()
        if isinstance(prompts, str):
            raise ConfigError("prompts must be a list of prompts; got a single str (wrap it in a list)")
        norm = [normalise_prompt(p) for p in prompts]
        n_distinct = 1 if params.greedy else params.n
        keys = [[self._key(p, params, j) for j in range(n_distinct)] for p in norm]
        cached = self.cache.get_many(k for ks in keys for k in ks) if self.cache is not None else {}
        todo: dict[str, Row] = {}
        for p, ks in zip(norm, keys):
            for j, k in enumerate(ks):
                if k not in cached and k not in todo:
                    todo[k] = Row(p, params, row_seed(params.seed, j))
        texts = {k: v.decode("utf-8") for k, v in cached.items()}
        # longest prompt first, in calls of save_every rows, each call's answers cached before the next
        order = sorted(todo, key=lambda k: -len(str(todo[k].prompt)))
        for start in range(0, len(order), self.save_every):
            part = order[start:start + self.save_every]
            completions = self.backend.complete([todo[k] for k in part])
            self.backend_calls += len(part)
            if len(completions) != len(part):
                raise LLMError(f"backend {self.backend.name} returned {len(completions)} texts for {len(part)} prompts")
            new = {k: c.text for k, c in zip(part, completions)}
            texts.update(new)
            if self.cache is not None:
                self.cache.put_many(
                    (k, "generate", self.backend.name, self.backend.fingerprint, t.encode("utf-8"))
                    for k, t in new.items()
                )
        return [[texts[ks[j % n_distinct]] for j in range(params.n)] for ks in keys]

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams | None = None) -> list[str]:
        """Return one text per prompt (``params.n`` must be 1; use :meth:`sample` for more)."""
        params = params or GenerationParams()
        if params.n != 1:
            raise ConfigError(f"generate returns one text per prompt; got n={params.n} (use Generator.sample)")
        return [texts[0] for texts in self.sample(prompts, params)]

    def complete(self, prompt: Prompt, params: GenerationParams | None = None) -> str:
        """Return the text for one prompt."""
        return self.generate([prompt], params)[0]


@dataclass
class Usage:
    """What one generator cost: rows sent to the model, completion tokens, cached rows, seconds
    (the last two are filled by callers that time their own stages)."""

    calls: int = 0
    tokens: int = 0
    cached: int = 0
    seconds: float = 0.0


@dataclass
class CountingBackend:
    """A Backend wrapper that counts the rows (cache misses) and completion tokens sent to ``inner``;
    same name and fingerprint, so cache keys do not change."""

    inner: Any
    usage: Usage = field(default_factory=Usage)
    name: str = ""
    fingerprint: str = ""

    def __post_init__(self) -> None:
        self.name, self.fingerprint = str(self.inner.name), str(self.inner.fingerprint)

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        out = list(self.inner.complete(rows))
        self.usage.calls += len(rows)
        self.usage.tokens += sum(int(getattr(c, "completion_tokens", 0) or 0) for c in out)
        return out


def counted(gen: Generator) -> Generator:
    """The same generator (same cache) with a :class:`CountingBackend`; ``gen.backend.usage`` holds the counts."""
    if isinstance(gen.backend, CountingBackend):
        return gen
    return Generator(CountingBackend(gen.backend), gen.cache, gen.save_every)


def params_from_mapping(values: Mapping[str, Any]) -> GenerationParams:
    """Build :class:`GenerationParams` from a dict, rejecting unknown keys (used by config files)."""
    from recwise.config import config_from_dict

    values = dict(values)
    stop = values.pop("stop", ())
    stop = (stop,) if isinstance(stop, str) else tuple(stop)  # kept verbatim: "\n" must not be stripped
    params = config_from_dict(GenerationParams, values, where="generation")
    return dataclasses.replace(params, stop=stop)

