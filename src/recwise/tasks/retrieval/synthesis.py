"""SyNeg's synthesis step: an LLM writes a hard negative per (query, positive), checks it, and a guard filters it.

1. **Multi-attribute prompt** (:func:`draft_prompt`): the LLM sees the query and a judged positive
   and is told what the negative must share with the positive (topic, technical terms and entities,
   style, length) and the one thing it must not do (answer the query).
2. **Self-reflection turn** (:func:`reflection_prompt`): the draft goes back to the LLM as its own
   answer with the attribute list as a checklist; it returns the passage (kept or rewritten) or
   ``REJECT``.
3. **Guard** (deterministic): a small local model fails in ways reflection does not catch (it
   copies the positive, drifts off topic, writes one line). The survivor is kept only when it has
   at least ``min_words`` words, its cosine to the query lies in the band ``[band_lo, band_hi]``
   (by default the 10th-90th percentiles of the query-to-mined-negative cosines, so a synthetic
   negative is as hard as a mined one, no harder), and its cosine to the positive is below ``tau``
   (not a paraphrase of the positive).

Both turns go through the LLM layer's :class:`~recwise.llm.Generator` and its disk cache (greedy
decoding, so a re-run makes zero model calls); any backend works, local GGUF or an
OpenAI-compatible server. Every prompt, draft, reflection and verdict is written to a JSONL file.
Which details are our reading of the paper (no code is public) is written in docs/retrieval.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recwise.errors import ConfigError

__all__ = ["SynthConfig", "SynthResult", "draft_prompt", "reflection_prompt", "synthesise"]

ATTRIBUTES = (
    "the same topic as the relevant passage",
    "the same technical terms and named entities",
    "the same style and register as the relevant passage",
    "about the same length",
)


@dataclass(frozen=True)
class SynthConfig:
    """Synthesis options.

    Parameters
    ----------
    backend : {"local", "http"}, default "local"
        The LLM layer's backend: local GGUF (``model`` smollm2 or gemma3) or any OpenAI-compatible server.
    model : str or None
        Default: smollm2 locally, ``$RECWISE_LLM_MODEL`` over HTTP.
    base_url : str or None
    max_tokens : int, default 160
    max_chars : int, default 700
        The positive passage is cut to this many characters in the prompt.
    queries : int, default 0
        Synthesise for at most this many training queries (0: all), in query order.
    min_words : int, default 12
    band_lo, band_hi : float or None
        Guard band on cos(negative, query); None: the 10th / 90th percentile of the mined negatives' cosines.
    tau : float, default 0.92
        Guard: cos(negative, positive) must be below this.
    reflect : bool, default True
        Run the self-reflection turn.
    """

    backend: Literal["local", "http"] = "local"
    model: str | None = None
    base_url: str | None = None
    max_tokens: int = 160
    max_chars: int = 700
    queries: int = 0
    min_words: int = 12
    band_lo: float | None = None
    band_hi: float | None = None
    tau: float = 0.92
    reflect: bool = True

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_chars", "min_words"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"option 'synth.{name}' must be an int >= 1; got {v!r}")
        if isinstance(self.queries, bool) or not isinstance(self.queries, int) or self.queries < 0:
            raise ConfigError(f"option 'synth.queries' must be an int >= 0; got {self.queries!r}")
        if not -1 <= self.tau <= 1:
            raise ConfigError(f"option 'synth.tau' must be in [-1, 1]; got {self.tau}")


def draft_prompt(query: str, positive: str, max_chars: int) -> list[dict[str, str]]:
    """The multi-attribute prompt (a chat)."""
    words = len(positive.split())
    rules = "\n".join(f"{i}. It has {a}." for i, a in enumerate(ATTRIBUTES, 1))
    return [
        {"role": "system", "content": "You write hard negative passages for testing a search engine."},
        {"role": "user", "content": (
            f"Query: {query}\n\nRelevant passage: {positive[:max_chars]}\n\n"
            f"Write a new passage of about {min(words, 120)} words with these attributes:\n{rules}\n"
            f"{len(ATTRIBUTES) + 1}. It does NOT answer the query.\n"
            "Output only the passage.")},
    ]


def reflection_prompt(draft: list[dict[str, str]], answer: str) -> list[dict[str, str]]:
    """The self-reflection turn: the draft's chat, the model's answer, and the checklist."""
    checklist = "; ".join(ATTRIBUTES)
    return [*draft, {"role": "assistant", "content": answer}, {"role": "user", "content": (
        f"Check your passage. It must keep: {checklist}; and it must NOT answer the query. "
        "If it breaks a rule, write a corrected passage. If it is fine, repeat it. "
        "If it cannot be fixed, answer only REJECT. Output only the passage or REJECT.")}]


@dataclass
class SynthResult:
    """Kept negatives per query row, the counts of the run and one record per pair (what the JSONL holds)."""

    negatives: dict[int, str]
    counts: dict[str, Any]
    records: list[dict[str, Any]]


def _clean(text: str) -> str:
    text = text.strip().strip('"').strip()
    for prefix in ("Passage:", "Here is", "Corrected passage:"):
        if text.startswith(prefix):
            text = text.split("\n", 1)[1].strip() if "\n" in text else text[len(prefix):].strip()
    return " ".join(text.split())


def synthesise(generator: Any, encoder: Any, pairs: Sequence[tuple[int, str, str]], config: SynthConfig,
               mined_cosines: np.ndarray, log_path: Path | None = None) -> SynthResult:
    """Write, reflect on and guard one negative per ``(query row, query text, positive text)``.

    ``generator``: a :class:`~recwise.llm.Generator`; ``encoder``: anything with ``encode(texts)``
    returning unit rows (the zero-shot encoder); ``mined_cosines``: cos(query, mined negative)
    samples that set the default guard band.
    """
    from recwise.llm import GenerationParams

    params = GenerationParams(temperature=0.0, max_tokens=config.max_tokens)
    t0 = time.perf_counter()
    calls0 = generator.backend_calls
    usage = getattr(generator.backend, "usage", None)  # a CountingBackend (recwise.llm.counted) counts tokens
    tokens0 = usage.tokens if usage is not None else 0
    drafts = [draft_prompt(q, p, config.max_chars) for _, q, p in pairs]
    first = generator.generate(drafts, params) if drafts else []
    if config.reflect:
        second = generator.generate([reflection_prompt(d, a) for d, a in zip(drafts, first)], params) if drafts else []
    else:
        second = list(first)
    lo = config.band_lo if config.band_lo is not None else (
        float(np.quantile(mined_cosines, 0.1)) if len(mined_cosines) else -1.0)
    hi = config.band_hi if config.band_hi is not None else (
        float(np.quantile(mined_cosines, 0.9)) if len(mined_cosines) else 1.0)
    records: list[dict[str, Any]] = []
    survivors = []
    for (q_row, q, p), a, r in zip(pairs, first, second):
        text = _clean(r)
        rec: dict[str, Any] = {"query_row": q_row, "query": q, "positive": p[:config.max_chars], "draft": a,
                               "reflection": r, "negative": text}
        if not text or text.upper().startswith("REJECT"):
            rec["verdict"] = "rejected-by-reflection"
        elif len(text.split()) < config.min_words:
            rec["verdict"] = "rejected-by-guard:too-short"
        else:
            survivors.append(len(records))
        records.append(rec)
    if survivors:
        texts = [records[i]["negative"] for i in survivors]
        qv = encoder.encode([records[i]["query"] for i in survivors])
        pv = encoder.encode([records[i]["positive"] for i in survivors])
        nv = encoder.encode(texts)
        cos_q = np.sum(qv * nv, axis=1)
        cos_p = np.sum(pv * nv, axis=1)
        for j, i in enumerate(survivors):
            rec = records[i]
            rec["cos_query"], rec["cos_positive"] = round(float(cos_q[j]), 4), round(float(cos_p[j]), 4)
            if not lo <= cos_q[j] <= hi:
                rec["verdict"] = "rejected-by-guard:query-band"
            elif cos_p[j] >= config.tau:
                rec["verdict"] = "rejected-by-guard:copies-positive"
            else:
                rec["verdict"] = "kept"
    verdicts = [r["verdict"] for r in records]
    counts: dict[str, Any] = {
        "pairs": len(records),
        "kept": verdicts.count("kept"),
        "rejected_by_reflection": verdicts.count("rejected-by-reflection"),
        "rejected_by_guard": sum(v.startswith("rejected-by-guard") for v in verdicts),
        "guard_reasons": {v.split(":", 1)[1]: verdicts.count(v) for v in sorted(set(verdicts)) if ":" in v},
        "llm_calls": generator.backend_calls - calls0,
        "prompts": 2 * len(records) if config.reflect else len(records),
        "band": [round(lo, 4), round(hi, 4)],
        "tau": config.tau,
        "wall_seconds": round(time.perf_counter() - t0, 3),
    }
    if usage is not None:
        counts["completion_tokens"] = usage.tokens - tokens0
    counts["cache_hits"] = counts["prompts"] - counts["llm_calls"]
    if log_path is not None:
        from recwise.results import atomic_write_text

        atomic_write_text(log_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    kept = {r["query_row"]: r["negative"] for r in records if r["verdict"] == "kept"}
    return SynthResult(kept, counts, records)
