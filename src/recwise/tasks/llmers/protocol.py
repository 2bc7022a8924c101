"""LLM-enhanced sequential recommendation (LLMERS survey families) on the sequential protocol.

One run = optional offline LLM/encoder steps, then SASRec trained and tested exactly as
:mod:`recwise.tasks.sequential` does (leave-one-out, full ranking, CE, early stopping on validation
NDCG@10), with three extra kinds of segments: popularity bin of the target item (``pop=1`` ..
``pop=10``, ``pop=warm``, ``pop=cold``: PAD's equal-mass bins, :mod:`recwise.metrics.sequential`),
shortest-history users (``hist=short``: the 20 % shortest full histories) and the sequential task's
length groups (``len=...``).

Methods (``--method``): named sets of options, all usable directly with ``--set``
(:data:`recwise.tasks.llmers.methods.METHODS`: plain, text-init, alpharec, kar, kar-item, llmrec).

The LLM and the encoder run before training only; the recorded cost of every offline step
(prompts, model calls, cache hits, templated texts, fallbacks, wall time) goes to ``run.json``,
every generated text to ``knowledge.jsonl`` / ``pseudo.jsonl``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import recwise
from recwise.config import config_from_dict, config_hash, config_to_dict
from recwise.data.sequence import (
    SeqDataConfig,
    Sequences,
    eval_inputs,
    make_examples,
    seq_schema,
    windows,
)
from recwise.data.table import Batch
from recwise.errors import CheckpointError, ConfigError
from recwise.metrics.ranking import ranking_metrics
from recwise.metrics.sequential import (
    KS,
    LENGTH_GROUPS,
    model_ranks,
    popularity_bins,
    segment_metrics,
    train_item_counts,
)
from recwise.registry import get_model
from recwise.results import ResultRow, atomic_write_text, write_results
from recwise.tasks.llmers.methods import METHODS, SCOPES
from recwise.train import TrainConfig, Trainer, save_model, save_tensors, seed_everything
from recwise.train.presets import sequential_train_defaults as train_defaults

__all__ = ["METHODS", "SCOPES", "LLMERSDataConfig", "LLMERSRun", "Offline", "check_options", "method_options", "run",
           "weighted_loss"]

TASK = "llmers"


@dataclass(frozen=True)
class LLMERSDataConfig(SeqDataConfig):
    """The sequential task's data options plus the interaction-enhancement ones."""

    pseudo: Literal["none", "llmrec"] = "none"
    pseudo_weight: float = 0.5  # loss weight of a pseudo target (real targets weigh 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.pseudo_weight <= 10.0:
            raise ConfigError(f"option 'data.pseudo_weight' must be in (0, 10]; got {self.pseudo_weight}")


@dataclass(frozen=True)
class LLMERSRun:
    dataset: str = "ml-100k"
    method: str = "plain"
    seed: int = 0
    data_dir: str | None = None


def weighted_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """CE over all items, each target weighted (``weight`` / ``weight_seq``; 1 when absent),
    normalised by the total weight. Without pseudo rows it equals the sequential task's loss."""
    if "target" in batch:
        ce = F.cross_entropy(model(batch), batch["target"], reduction="none")
        w = batch.get("weight")
        return ce.mean() if w is None else (ce * w).sum() / w.sum()
    h = model.encode(batch)
    m = batch["target_seq"] > 0
    ce = F.cross_entropy(model.score(h[m]), batch["target_seq"][m], reduction="none")
    if "weight_seq" not in batch:
        return ce.mean()
    w = batch["weight_seq"][m]
    return (ce * w).sum() / w.sum()


def pseudo_rows(seqs: Sequences, pairs: list[tuple[int, int]], kind: str, max_len: int, padding: str,
                weight: float) -> dict[str, torch.Tensor]:
    """One training row per pseudo (user, item): input = the user's latest training items, target
    = the pseudo item after the last of them, in the layout of ``kind`` examples."""
    users = np.array([u for u, _ in pairs], np.int64)
    items = np.array([i for _, i in pairs], np.int64)
    start = seqs.offsets[:-1][users]
    n = seqs.offsets[1:][users] - start
    end = np.where(n >= 3, start + n - 2, start + n)
    seq, length = windows(seqs.items, start, end, max_len, padding)  # type: ignore[arg-type]
    out = {"item_seq": torch.from_numpy(seq), "item_len": torch.from_numpy(length), "user": torch.from_numpy(users)}
    if kind == "prefix":
        out |= {"target": torch.from_numpy(items), "weight": torch.full((len(items),), float(weight))}
    else:
        last = np.where(seq[:, -1] != 0, max_len - 1, np.maximum(length - 1, 0))
        tgt = np.zeros_like(seq)
        tgt[np.arange(len(seq)), last] = items
        w = np.zeros(seq.shape, np.float32)
        w[np.arange(len(seq)), last] = weight
        out |= {"target_seq": torch.from_numpy(tgt), "weight_seq": torch.from_numpy(w)}
    return out


def _with_pseudo(train: Batch, extra: dict[str, torch.Tensor]) -> Batch:
    if "target" in train:
        base = {**train, "weight": torch.ones(len(train["target"]))}
    else:
        base = {**train, "weight_seq": (train["target_seq"] > 0).float()}
    return {k: torch.cat([base[k], extra[k]]) for k in base}


@dataclass
class Offline:
    """What the offline steps made: the text-vector file, pseudo pairs and the step records."""

    text_path: Path | None
    pairs: list[tuple[int, int]]
    steps: list[dict[str, Any]]


def offline_steps(cell: LLMERSRun, seqs: Sequences, mcfg_opts: dict[str, Any], dcfg: LLMERSDataConfig,
                  options: dict[str, dict[str, str]], folder: Path, *, progress: bool,
                  generator: Any = None, encoder: Any = None, max_len: int = 50) -> Offline:
    """Run what the options need: item text encoding, KAR profiles, LLMRec pseudo positives.
    ``max_len``: the training windows' length (KAR's leak-free window profiles)."""
    from recwise.llmers import (
        KnowledgeConfig,
        PseudoConfig,
        StepStats,
        build_knowledge,
        encode_rows,
        item_meta_rows,
        item_texts,
        item_tokens,
        pick_positives,
        read_item_meta,
        write_jsonl,
    )

    needs_text = mcfg_opts.get("item_init") == "text" or mcfg_opts.get("item_tower") == "alpharec"
    kar = mcfg_opts.get("knowledge") == "kar"
    pseudo = dcfg.pseudo == "llmrec"
    kcfg = config_from_dict(KnowledgeConfig, options["kar"], where="kar")
    pcfg = config_from_dict(PseudoConfig, options["llmrec"], where="llmrec")
    steps: list[dict[str, Any]] = []
    if not (needs_text or kar or pseudo):
        return Offline(None, [], steps)
    meta = item_meta_rows(item_tokens(cell.dataset, seqs, cell.data_dir), read_item_meta(cell.dataset, cell.data_dir))
    state: dict[str, Any] = {"generator": generator, "encoder": encoder}

    def enc() -> Any:
        if state["encoder"] is None:
            from recwise.llm import load_encoder

            state["encoder"] = load_encoder({"show_progress": progress, **options["encoder"]})
        return state["encoder"]

    def gen() -> Any:
        if state["generator"] is None:
            from recwise.llmers.text import lazy_generator

            state["generator"] = lazy_generator(options["llm"])
        return state["generator"]

    tables: dict[str, np.ndarray] = {}
    if needs_text:
        st = StepStats("item_text").start()
        tables["item_text"] = encode_rows(enc(), item_texts(meta), st)
        steps.append(st.stop().as_dict())
    if kar:
        if str(mcfg_opts.get("kar_user", True)).lower() in ("false", "0", "no"):  # no user table read
            kcfg = replace(kcfg, user_profile="history")  # so no window profiles to write and encode
        g = gen() if (kcfg.item_budget or kcfg.user_budget) else None
        res = build_knowledge(seqs, meta, g, enc(), kcfg, max_len=max_len, progress=progress)
        tables["item_knowledge"], tables["user_knowledge"] = res.item_vectors, res.user_vectors
        write_jsonl(folder / "knowledge.jsonl", res.records)
        steps.append(res.stats.as_dict())
    text_path = None
    if tables:
        text_path = folder / "text.safetensors"
        save_tensors(text_path, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tables.items()})
    pairs: list[tuple[int, int]] = []
    if pseudo:
        g = gen() if (pcfg.budget and pcfg.users) else None
        if g is None:
            pairs, steps = [], steps + [StepStats("llmrec").as_dict()]
        else:
            pres = pick_positives(seqs, meta, g, pcfg, progress=progress)
            pairs = pres.pairs
            write_jsonl(folder / "pseudo.jsonl", pres.records)
            steps.append(pres.stats.as_dict())
    return Offline(text_path, pairs, steps)


def _window_profiles(mcfg: Any, opts: dict[str, dict[str, str]], max_len: int) -> int:
    """Targets per profile when training rows read per-window user profiles (KAR with user
    knowledge, the default ``kar.user_profile=window``; ``kar.refresh`` or ``max_len``), else 0.
    Their ``user`` column then holds the row of the user-knowledge table (``n_users + window``);
    validation, test and pseudo rows keep the user id, whose row is the profile of the whole
    training history."""
    from recwise.llmers import KnowledgeConfig

    kcfg = config_from_dict(KnowledgeConfig, opts["kar"], where="kar")
    if mcfg.knowledge == "kar" and mcfg.kar_user and kcfg.user_profile == "window":
        return kcfg.refresh or max_len
    return 0


def _segments(ranks: np.ndarray, data: Batch, bins: np.ndarray) -> dict[str, dict[str, float]]:
    history = (data["hist_end"] - data["hist_start"]).numpy()
    out = segment_metrics(ranks, data["target"].numpy(), bins, ks=KS, history=history)
    lengths = data["item_len"].numpy()
    for lo, hi in LENGTH_GROUPS:
        sel = (lengths >= lo) & (lengths < hi)
        out[f"len={int(lo)}-{'inf' if hi == float('inf') else int(hi)}"] = {**ranking_metrics(ranks[sel], KS),
                                                                           "users": float(sel.sum())}
    return out


def method_options(method: str, options: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Every scope's options for ``method``: the method's own (:data:`METHODS`), then ``options``.
    An unknown method is a ConfigError with a did-you-mean."""
    own = METHODS.get(method)
    return {s: {**own.get(s, {}), **(options or {}).get(s, {})} for s in SCOPES}


def _configs(opts: dict[str, dict[str, str]], dataset_max_len: int, seed: int) -> tuple[Any, ...]:
    """The data, train and model configs of a run (checked); the model's without its text file yet."""
    dcfg = config_from_dict(LLMERSDataConfig, opts["data"], where="data")
    cls = get_model("sequential", "sasrec")
    kind = cls.examples[0] if dcfg.examples == "auto" else dcfg.examples
    if kind not in cls.examples:
        raise ConfigError(f"SASRec does not train on '{kind}' examples; it supports {list(cls.examples)}")
    max_len = dcfg.max_len or dataset_max_len
    tcfg = config_from_dict(TrainConfig, {**train_defaults(kind), **opts["train"], "seed": seed}, where="train")
    model_opts: dict[str, Any] = {"max_len": max_len, **opts["model"]}
    config_from_dict(cls.Config, {**model_opts, "text_path": model_opts.get("text_path") or "-"}, where="model")
    return cls, dcfg, kind, max_len, tcfg, model_opts


def check_options(method: str, options: dict[str, dict[str, str]] | None = None, dataset_max_len: int = 50) -> None:
    """Raise a ConfigError on an unknown method or a bad option of any scope, before any data is read."""
    from recwise.llm import EncoderConfig, GeneratorConfig
    from recwise.llmers import KnowledgeConfig, PseudoConfig

    opts = method_options(method, options)
    _configs(opts, dataset_max_len, 0)
    config_from_dict(KnowledgeConfig, opts["kar"], where="kar")
    config_from_dict(PseudoConfig, opts["llmrec"], where="llmrec")
    config_from_dict(GeneratorConfig, opts["llm"], where="llm")
    config_from_dict(EncoderConfig, opts["encoder"], where="encoder")


def run(
    cell: LLMERSRun,
    seqs: Sequences,
    *,
    dataset_max_len: int = 50,
    options: dict[str, dict[str, str]] | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    data_key: str | None = None,
    generator: Any = None,
    encoder: Any = None,
) -> list[ResultRow]:
    """Offline steps, then train and test SASRec with the method's options; returns result rows.

    ``options`` maps a scope (``train``, ``model``, ``data``, ``kar``, ``llmrec``, ``llm``,
    ``encoder``) to its overrides; the method's own options come first. ``generator`` /
    ``encoder`` may be passed in (tests, benches) instead of being loaded from ``llm`` / ``encoder``.
    """
    opts = method_options(cell.method, options)
    cls, dcfg, kind, max_len, tcfg, model_opts = _configs(opts, dataset_max_len, cell.seed)
    if resume and (out_dir is None or not any((out_dir / n).exists() for n in ("checkpoint", "checkpoint.old"))):
        # said before the offline steps run, not after (the trainer would say the same)
        raise CheckpointError(f"--resume given but no checkpoint in {out_dir}; run without --resume")

    scratch = None
    folder = out_dir
    if folder is None:
        scratch = tempfile.TemporaryDirectory(prefix="recwise-llmers-")
        folder = Path(scratch.name)
    t_off = time.perf_counter()
    off = offline_steps(cell, seqs, model_opts, dcfg, opts, folder, progress=progress, generator=generator,
                        encoder=encoder, max_len=max_len)
    offline_seconds = time.perf_counter() - t_off
    if off.text_path is not None and not model_opts.get("text_path"):
        model_opts["text_path"] = str(off.text_path)
    mcfg = config_from_dict(cls.Config, model_opts, where="model")

    train = make_examples(seqs, kind, max_len, dcfg.padding)
    span = _window_profiles(mcfg, opts, max_len)
    if span:  # KAR, leak-free: each training row reads the profile of the items before its first target
        from recwise.llmers.knowledge import refreshed_examples, train_profile_rows

        if kind == "sequence" and span != max_len:
            train = refreshed_examples(seqs, max_len, span, dcfg.padding)
        train = {**train, "user": torch.from_numpy(train_profile_rows(seqs, span, kind))}
    if off.pairs:
        train = _with_pseudo(train, pseudo_rows(seqs, off.pairs, kind, max_len, dcfg.padding, dcfg.pseudo_weight))
    val = eval_inputs(seqs, "val", max_len, dcfg.padding)
    test = eval_inputs(seqs, "test", max_len, dcfg.padding)
    items = torch.from_numpy(np.asarray(seqs.items))
    bins = popularity_bins(train_item_counts(seqs))
    seed_everything(cell.seed)
    model = cls(seq_schema(seqs.n_items), mcfg)

    def monitor(m: nn.Module) -> float:
        r = model_ranks(m, val, items, mask=dcfg.mask_history, batch_size=tcfg.eval_batch_size)
        return ranking_metrics(r, (10,))["ndcg@10"]

    mcfg_hashable = {k: v for k, v in config_to_dict(mcfg).items() if k != "text_path"}
    trainer = Trainer(model, tcfg, loss_fn=weighted_loss, monitor=monitor, mode="max", run_dir=out_dir,
                      progress=progress, extra_state={"method": cell.method, "mcfg": mcfg_hashable,
                                                      "dcfg": config_to_dict(dcfg), "data": data_key,
                                                      "pseudo": len(off.pairs)})
    t0 = time.perf_counter()
    result = trainer.fit(train, resume=resume)
    wall = time.perf_counter() - t0
    label = "sasrec" if cell.method == "plain" else f"sasrec+{cell.method}"
    rows: list[ResultRow] = []
    by_split = {}
    for split, data in (("val", val), ("test", test)):
        ranks = model_ranks(model, data, items, mask=dcfg.mask_history, batch_size=tcfg.eval_batch_size)
        res = _segments(ranks, data, bins)
        by_split[split] = res
        for segment, metrics in res.items():
            for metric, value in metrics.items():
                if metric not in ("users", "max_history"):
                    rows.append(ResultRow(TASK, cell.dataset, label, cell.seed, split, segment, metric, value))
    if out_dir is not None:
        save_model(out_dir / "model", model)
        write_results(out_dir / "results.csv", rows)
        info = {
            "task": TASK, "dataset": cell.dataset, "method": cell.method, "model": label, "seed": cell.seed,
            "data_key": data_key, "examples": kind, "max_len": max_len,
            "train_rows": len(next(iter(train.values()))), "pseudo_rows": len(off.pairs),
            "train_config": config_to_dict(tcfg), "model_config": config_to_dict(mcfg),
            "data_config": config_to_dict(dcfg),
            "step_options": {s: opts[s] for s in ("kar", "llmrec", "llm", "encoder")},
            "config_hash": config_hash(tcfg, dcfg, {"model": mcfg_hashable, "method": cell.method,
                                                    "dataset": cell.dataset}),
            "version": recwise.__version__, "offline_steps": off.steps, "offline_seconds": offline_seconds,
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
            "wall_seconds": wall, "train_seconds": result.train_seconds,
            "users": {s: {seg: m["users"] for seg, m in r.items()} for s, r in by_split.items()},
            "popularity_bins": {"items_per_bin": np.bincount(bins[1:], minlength=11)[1:].tolist()},
            "history": result.history,
        }
        atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=list))
    if scratch is not None:
        scratch.cleanup()
    return rows
