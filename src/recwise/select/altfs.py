"""AltFS / SELF (LLM family): LLM rankings of the fields, refined by a surrogate model.

Stage 1, as released (Jia-py/SELF ``predict.py``), for every LLM in ``llms``: start from the
user and item fields as "already selected"; while candidates remain, prompt the LLM with the
task, the dataset size, a table of every field (name, description from ``Field.description``,
type, an example value, the number of unique values), the fields selected so far and the
candidates, asking for the single most important candidate (preferring informative, independent
of the selected ones, simple), with the feature name alone on the last line; append the answer.
The order of selection is that LLM's ranking. Every call goes through the LLM layer (disk cache,
local GGUF or any OpenAI-compatible server); released sampling: temperature 0.7, 1000 tokens.

Our fixes, each recorded in ``report_``:

- parsing: the last non-empty line is matched against the candidates, longest name first, as
  released, but as a whole word and ignoring case (released: plain case-sensitive substring,
  so ``age`` matched inside ``average``); then the whole answer (the LLM layer's
  :func:`~recwise.llm.parse_choice`: after an answer cue, else the first mention);
- bounded retries (``max_attempts``, the LLM layer's :func:`~recwise.llm.ask`: a format
  reminder and a new sampling seed) and then a *fallback* pick: the best remaining candidate by
  mutual information with the label on the training table (``fallback="mi"``) or in schema order
  (``"schema"``). The released loop re-asked forever on an unparsable answer;
- the last candidate is appended without a call (it is the only possible answer);
- the start fields are found by name (``user``/``user_id``/..., ``item``/``movie_id``/...) or set
  with ``start_fields``; the released code hard-codes them per dataset.

Stage 2, as released (``selfs.py``): each ranking i gives a prior ``s_i,f = 1 - rank_i(f)/F``.
A surrogate backbone is trained (its own Adam, BCE) with, before its head, BatchNorm over the
embedding width and a gate ``sum_i a_i * mask_i,f`` where ``a = softmax(w * e^4)`` (``w`` init 0:
equal weights) and, at every forward, ``mask_i`` zeroes a random number ``r`` in
``[1, int(mask_ratio * F)]`` of ranking i's lowest-ranked fields (``max(1, .)``: the released
``randint(1, 0)`` fails below 5 fields). Final score (released ``llm_selection.py``):
``score_f = sum_i a_i (1 - rank_i(f)/F)`` with ``a`` *read from the trained surrogate* (the
released script took the weights typed on its command line). With a single LLM ``a = 1`` whatever
the training, so the surrogate is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from recwise.data.schema import Field, FieldKind
from recwise.data.table import Batch, Table
from recwise.errors import ConfigError
from recwise.select._gated import Gate, GatedModel
from recwise.select.base import FieldSelector, fit_backbone, register_selector, require_valid
from recwise.train import TrainConfig

__all__ = ["AltFS", "AltFSConfig", "SurrogateGate", "build_prompt", "llm_rank", "parse_feature", "prior_scores"]

USER_NAMES = ("user_id", "user", "userid", "uid", "101")
ITEM_NAMES = ("item_id", "item", "itemid", "iid", "movie_id", "movie", "video_id", "205")
DEFAULT_TASK = ("given user features, item features and interaction features, predict whether the user "
                "will click on (positively interact with) the item")


@dataclass(frozen=True)
class AltFSConfig:
    """AltFS's options.

    Parameters
    ----------
    llms : tuple of str, default ("local:smollm2",)
        One spec per LLM: ``local:<model>`` (``smollm2``, ``gemma3``, a ``.gguf`` or a HF folder)
        or ``http:<model>`` (any OpenAI-compatible server; ``base_url``/``$RECWISE_LLM_BASE_URL``).
        The released run used three (gpt-4o, gpt-4-turbo, gpt-3.5-turbo-instruct).
    base_url : str or None
        Server of the ``http:`` specs (default ``$RECWISE_LLM_BASE_URL``; key from ``$RECWISE_LLM_API_KEY``).
    temperature, max_tokens : default 0.7, 1000 (released)
    max_attempts : int, default 3
        LLM calls per pick before the fallback.
    fallback : {"mi", "schema"}, default "mi"
        Order of the fallback pick: mutual information with the label on the training table, or schema order.
    start_fields : tuple of str or None
        The fields "already selected" at the start (None: the user and item fields found by name; () none).
    task_description : str, default ""
        The task sentence of the prompt ("" = a click-prediction sentence).
    cache_path : str or None
        LLM cache file (default: the LLM layer's, ``$RECWISE_HOME/llm-cache.sqlite``).
    llm_device : {"auto", "cpu", "cuda"}
        Device of local LLMs.
    refine : bool, default True
        Stage 2 (the surrogate); False: score by equal weights (the plain Borda count of the rankings).
    mask_ratio : float, default 0.2
        Largest share of a ranking's tail dropped per forward.
    weight_temperature : float, default 4.0
        ``a = softmax(w * e^weight_temperature)``.
    """

    llms: tuple[str, ...] = ("local:smollm2",)
    base_url: str | None = None
    temperature: float = 0.7
    max_tokens: int = 1000
    max_attempts: int = 3
    fallback: Literal["mi", "schema"] = "mi"
    start_fields: tuple[str, ...] | None = None
    task_description: str = ""
    cache_path: str | None = None
    llm_device: Literal["auto", "cpu", "cuda"] = "auto"
    refine: bool = True
    mask_ratio: float = 0.2
    weight_temperature: float = 4.0

    def __post_init__(self) -> None:
        if not self.llms:
            raise ConfigError("option 'method.llms' is empty; give at least one spec such as 'local:smollm2'")
        for spec in self.llms:
            parse_spec(spec)
        if not 1 <= self.max_attempts <= 10:
            raise ConfigError(f"option 'method.max_attempts' must be in [1, 10]; got {self.max_attempts}")
        if not 0.0 < self.mask_ratio <= 1.0:
            raise ConfigError(f"option 'method.mask_ratio' must be in (0, 1]; got {self.mask_ratio}")
        if self.max_tokens < 1:
            raise ConfigError(f"option 'method.max_tokens' must be >= 1; got {self.max_tokens}")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"local:smollm2"`` -> ("local", "smollm2"); ``"http:gpt-4o"`` -> ("http", "gpt-4o");
    ``"local"`` -> ("local", None)."""
    backend, _, model = str(spec).partition(":")
    if backend not in ("local", "http"):
        raise ConfigError(f"option 'method.llms': spec {spec!r} must start with 'local:' or 'http:' "
                          "(e.g. local:smollm2, http:gpt-4o)")
    return backend, (model or None)


# ---------------------------------------------------------------------------- stage 1: prompt


def field_info(train: Table, fields: list[str], examples: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Name, description, type, example value and unique-value count of every field.

    The example is ``examples[name]`` (a raw value, or the first of a list) when given, else the
    first row's (encoded) value.
    """
    out = []
    for name in fields:
        f: Field = train.schema[name]
        col = np.asarray(train.columns[name])
        if f.kind == FieldKind.SPARSE:
            kind, unique, example = "categorical id (int64)", int(f.vocab_size), str(int(col[0]))
        else:
            sample = col[: 200_000]
            kind, unique, example = "numeric (float)", int(np.unique(sample).size), f"{float(col[0]):.4g}"
        raw = (examples or {}).get(name)
        if raw is not None:
            example = str(raw[0] if isinstance(raw, (list, tuple)) and raw else raw)
        out.append({"name": name, "description": f.description or "(no description)", "type": kind,
                    "example": example, "unique": unique})
    return out


def _line(*cells: object) -> str:
    return "\t".join(str(c).replace("\n", " ") for c in cells)


def build_prompt(info: Sequence[dict[str, Any]], selected: Sequence[str], candidates: Sequence[str], *,
                 n_samples: int, task: str = "") -> str:
    """The stage-1 prompt (the released prompt's parts, in our words)."""
    rows = "\n".join(_line(i["name"], i["description"], i["type"], i["example"], i["unique"]) for i in info)
    return (
        "You are an experienced researcher in recommender systems and feature selection. Given a prediction "
        "task and descriptions of its features, you choose the features that let a deep recommendation model "
        "predict the task accurately and robustly.\n"
        "Below you find the task, the dataset, the features, the features already selected and the candidate "
        "features. Study them and choose the one candidate feature you consider most important.\n\n"
        f"Task: {task or DEFAULT_TASK}.\n\n"
        "Dataset:\n"
        f"{_line('Field name', 'Description', 'Value')}\n"
        f"{_line('Sample num', 'number of samples in the dataset', n_samples)}\n"
        f"{_line('Feature num', 'number of features', len(info))}\n\n"
        "Features:\n"
        f"{_line('Field name', 'Description', 'Type', 'Example', 'Unique values')}\n"
        f"{rows}\n\n"
        f"Features already selected: {list(selected)}\n"
        f"Candidate features: {list(candidates)}\n\n"
        "Choose the single candidate feature that is most important for this task and should join the "
        "selected features. Assume each feature is discretised simply by its unique values. As far as "
        "possible, the chosen feature should be:\n"
        "1. informative;\n"
        "2. independent of the features already selected;\n"
        "3. simple and easy for the model to understand.\n"
        "The last line of your answer must be the name of the chosen feature only, with no other characters."
    )


# ---------------------------------------------------------------------------- stage 1: parsing

_STRIP = " \t*`'\"“”‘’.,:;!()[]{}<>"


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", re.IGNORECASE)


def parse_feature(text: str, candidates: Sequence[str]) -> tuple[str, str] | None:
    """(candidate, where) named by an answer, or None. ``where`` is ``"last_line"`` or ``"anywhere"``.

    The last non-empty line first: an exact name (ignoring case, quotes, markdown), else the
    longest candidate named in it as a whole word; then the whole text
    (:func:`recwise.llm.parse_choice`).
    """
    from recwise.llm import parse_choice

    if not candidates:
        raise ConfigError("parse_feature: candidates is empty")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines:
        last = lines[-1]
        bare = last.strip(_STRIP)
        for c in candidates:
            if bare.casefold() == c.casefold():
                return c, "last_line"
        for c in sorted(candidates, key=len, reverse=True):
            if _word(c).search(last):
                return c, "last_line"
    if text.strip():
        hit = parse_choice(text, list(candidates))
        if hit is not None:
            return hit, "anywhere"
    return None


def mi_order(train: Table, fields: list[str], max_rows: int = 200_000) -> list[str]:
    """Fields by mutual information with the label (dense fields in 10 quantile bins), descending."""
    from sklearn.metrics import mutual_info_score

    n = min(len(train), max_rows)
    y = np.asarray(train.columns[train.schema.label.name])[:n]
    scores = []
    for name in fields:
        col = np.asarray(train.columns[name])[:n]
        if train.schema[name].kind == FieldKind.DENSE:
            edges = np.unique(np.quantile(col, np.linspace(0.1, 0.9, 9)))
            col = np.searchsorted(edges, col)
        scores.append(mutual_info_score(y, col))
    order = sorted(range(len(fields)), key=lambda i: (-scores[i], i))
    return [fields[i] for i in order]


def llm_rank(
    generator: Any,
    info: Sequence[dict[str, Any]],
    start: Sequence[str],
    fallback_order: Sequence[str],
    *,
    n_samples: int,
    task: str = "",
    temperature: float = 0.7,
    max_tokens: int = 1000,
    max_attempts: int = 3,
    seed: int = 0,
    label: str = "llm",
) -> tuple[list[str], list[dict[str, Any]]]:
    """One LLM's sequential ranking of every field, and a record of each pick."""
    from recwise.llm import GenerationParams, ask

    names = [i["name"] for i in info]
    selected = list(start)
    candidates = [n for n in names if n not in selected]
    params = GenerationParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    calls: list[dict[str, Any]] = []
    while candidates:
        step = len(selected)
        if len(candidates) == 1:
            pick = candidates[0]
            calls.append({"llm": label, "step": step, "candidates": 1, "chosen": pick, "attempts": 0,
                          "fallback": False, "parsed_from": "only_candidate", "answer": ""})
        else:
            prompt = [{"role": "user", "content": build_prompt(info, selected, candidates, n_samples=n_samples,
                                                               task=task)}]
            fb = next(f for f in fallback_order if f in candidates)
            cands = list(candidates)
            res = ask(generator, prompt, lambda t: parse_feature(t, cands),  # noqa: B023 - called in this iteration
                      reminder="Reply with one of the candidate features: " + ", ".join(cands)
                               + ". The last line must be that feature name only.",
                      fallback=(fb, "fallback"), params=params, max_attempts=max_attempts,
                      retry_temperature=temperature)
            pick, where = res.value  # type: ignore[misc]  # a fallback is given: never None
            calls.append({"llm": label, "step": step, "candidates": len(cands), "chosen": pick,
                          "attempts": res.attempts, "fallback": res.fallback_used, "parsed_from": where,
                          "answer": res.raw[-1][-400:] if res.raw else ""})
        selected.append(pick)
        candidates.remove(pick)
    return selected, calls


def prior_scores(rankings: Sequence[Sequence[str]], fields: Sequence[str]) -> np.ndarray:
    """(n_llms, F): ``1 - rank_i(f) / F`` per ranking, columns aligned with ``fields``."""
    n_f = len(fields)
    out = np.zeros((len(rankings), n_f))
    for i, r in enumerate(rankings):
        pos = {f: k for k, f in enumerate(r)}
        out[i] = [1.0 - pos[f] / n_f for f in fields]
    return out


# ---------------------------------------------------------------------------- stage 2: surrogate


class SurrogateGate(Gate):
    """BatchNorm over the width, then ``sum_i a_i * mask_i`` with random tail masks per ranking."""

    scale: torch.Tensor  # buffers
    order: torch.Tensor

    def __init__(self, prior: np.ndarray, embed_dim: int, *, mask_ratio: float = 0.2,
                 weight_temperature: float = 4.0, seed: int = 0) -> None:
        super().__init__()
        n, f = prior.shape
        self.batchnorm = nn.BatchNorm1d(embed_dim)
        self.llm_weight = nn.Parameter(torch.zeros(n, 1))
        self.register_buffer("scale", torch.tensor(float(np.exp(weight_temperature))), persistent=False)
        prior_t = torch.as_tensor(prior, dtype=torch.float32)
        self.register_buffer("order", torch.argsort(prior_t, dim=1, descending=True), persistent=False)
        self.max_drop = max(1, int(f * mask_ratio))
        self.rng = torch.Generator().manual_seed(int(seed))

    def weights(self) -> torch.Tensor:
        """(n,) the LLM weights ``softmax(w * e^t)``."""
        return torch.softmax(self.llm_weight * self.scale, dim=0).view(-1)

    def forward(self, emb: torch.Tensor, batch: Batch) -> torch.Tensor:
        x = self.batchnorm(emb.transpose(1, 2)).transpose(1, 2)
        n, f = self.order.shape
        drops = torch.randint(1, self.max_drop + 1, (n,), generator=self.rng).tolist()
        mask = torch.ones(n, f, device=emb.device)
        for i, r in enumerate(drops):
            mask[i, self.order[i, f - r:]] = 0.0
        gate = (self.weights().unsqueeze(1) * mask).sum(0)
        return x * gate.view(1, -1, 1)


# ---------------------------------------------------------------------------- the selector


@register_selector("altfs")
class AltFS(FieldSelector):
    """AltFS / SELF: LLM rankings (stage 1) + surrogate-weighted vote (stage 2).

    Extra keywords: ``generators``, ready :class:`~recwise.llm.Generator` objects to use instead of
    building them from ``llms`` (one per ranking); ``examples``, field -> raw example value(s) for
    the prompt (e.g. ``prepared.meta["examples"]`` of the selection datasets; default: the first
    row's encoded id). After ``fit``: ``llm_rankings_``,
    ``llm_weights_``, ``calls_`` and ``report_`` (rankings, every pick with its attempts and
    whether it fell back, fallback counts, weights, surrogate training).
    """

    Config = AltFSConfig
    family = "llm"
    uses_backbone = True

    def __init__(self, config: Any = None, *, generators: Sequence[Any] | None = None,
                 examples: Mapping[str, Any] | None = None, backbone: str = "mlp",
                 backbone_options: dict[str, Any] | None = None, train: TrainConfig | None = None, seed: int = 0,
                 device: str = "auto") -> None:
        super().__init__(config, backbone=backbone, backbone_options=backbone_options, train=train, seed=seed,
                         device=device)
        self._generators = list(generators) if generators is not None else None
        self._examples = dict(examples) if examples is not None else None

    def generators(self) -> list[tuple[str, Any]]:
        """(label, Generator) per LLM."""
        if self._generators is not None:
            labels = [f"{g.backend.name}:{g.backend.fingerprint}" for g in self._generators]
            labels = [lb if labels.count(lb) == 1 else f"{lb}#{i}" for i, lb in enumerate(labels)]
            return list(zip(labels, self._generators))
        from recwise.llm import load_generator

        out: list[tuple[str, Any]] = []
        for spec in self.config.llms:
            backend, model = parse_spec(spec)
            gen: Any
            if backend == "local":
                # the model loads at the first prompt the cache cannot answer
                gen = load_generator(backend="local", model=model, device=self.config.llm_device,
                                     cache_path=self.config.cache_path)
            else:
                gen = load_generator(backend="http", model=model, base_url=self.config.base_url,
                                     cache_path=self.config.cache_path)
            label = spec if list(self.config.llms).count(spec) == 1 else f"{spec}#{len(out)}"
            out.append((label, gen))
        return out

    def start_fields(self, train: Table) -> list[str]:
        fields = self.fields_
        if self.config.start_fields is not None:
            unknown = [f for f in self.config.start_fields if f not in fields]
            if unknown:
                raise ConfigError(f"option 'method.start_fields': unknown field(s) {unknown}; fields are {fields}")
            return list(dict.fromkeys(self.config.start_fields))
        start = []
        for names, word in ((USER_NAMES, "user"), (ITEM_NAMES, "item")):
            hit = next((f for n in names for f in fields if f.lower() == n), None)
            if hit is None:  # a description such as "user identifier" / "movie id"
                hit = next((f for f in fields if re.search(
                    rf"\b({word}|movie|video)\b.*\b(id|identifier)\b" if word == "item"
                    else rf"\b{word}\b.*\b(id|identifier)\b", train.schema[f].description, re.I)), None)
            if hit is not None and hit not in start:
                start.append(hit)
        return start

    def _score(self, train: Table, valid: Table | None) -> np.ndarray:
        cfg = self.config
        fields = self.fields_
        info = field_info(train, fields, self._examples)
        start = self.start_fields(train)
        fallback_order = mi_order(train, fields) if cfg.fallback == "mi" else list(fields)
        n_samples = len(train) + (len(valid) if valid is not None else 0)
        rankings: list[list[str]] = []
        labels: list[str] = []
        calls: list[dict[str, Any]] = []
        self.generators_ = self.generators()
        for label, gen in self.generators_:
            ranking, rec = llm_rank(gen, info, start, fallback_order, n_samples=n_samples, task=cfg.task_description,
                                    temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                                    max_attempts=cfg.max_attempts, seed=self.seed, label=label)
            rankings.append(ranking)
            labels.append(label)
            calls.extend(rec)
        prior = prior_scores(rankings, fields)
        surrogate: dict[str, Any] = {"trained": False}
        weights = np.full(len(rankings), 1.0 / len(rankings))
        if cfg.refine and len(rankings) > 1:
            require_valid(self.name, valid)
            assert valid is not None
            backbone = self.build_backbone(train.schema)
            gate = SurrogateGate(prior, backbone.embed_dim, mask_ratio=cfg.mask_ratio,
                                 weight_temperature=cfg.weight_temperature, seed=self.seed)
            model = GatedModel(backbone, gate)
            result = fit_backbone(model, train, valid, self.train_config)
            self.model_ = model
            weights = gate.weights().detach().cpu().double().numpy()
            surrogate = {"trained": True, "best_epoch": result.best_epoch, "val_auc": result.best_score,
                         "epochs": result.epochs_run}
        elif cfg.refine:
            surrogate["reason"] = "one ranking: its weight is 1 whatever the training"
        self.llm_rankings_ = rankings
        self.llm_weights_ = weights
        self.calls_ = calls
        self.report_ = {
            "llms": labels,
            "start_fields": start,
            "fallback_order": cfg.fallback,
            "rankings": dict(zip(labels, rankings)),
            "calls": calls,
            "llm_calls": sum(c["attempts"] for c in calls),
            "fallbacks": {lb: sum(1 for c in calls if c["llm"] == lb and c["fallback"]) for lb in labels},
            "parsed_anywhere": {lb: sum(1 for c in calls if c["llm"] == lb and c["parsed_from"] == "anywhere")
                                for lb in labels},
            "weights": dict(zip(labels, weights.tolist())),
            "surrogate": surrogate,
        }
        return weights @ prior
