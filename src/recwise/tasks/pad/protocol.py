"""PAD end to end: phase 0 (item text -> vectors), phases 1-3 (:mod:`recwise.models.seq.pad`),
PAD's evaluation protocol, resumable phase by phase.

* Phase 0: each item's text (ML-100K: title, release year and genres from the item file; other
  datasets: whatever their item file holds, see :func:`recwise.data.item_text.item_texts`) is encoded once by the LLM
  layer's encoder (``text.encoder=minilm`` offline by default; a sentence-transformers folder, or
  ``text.backend=http`` for a served model; ``hash`` is a model-free hashed bag of words for tests
  and machines without the wheel). The matrix is cached on disk under
  ``$RECWISE_HOME/prepared/pad-text-<hash>.npy``, keyed by the encoder and the texts.
* Phases 1-3 train with AdamW (the release's optimizer, weight decay 0.1), batches of 128
  sequences (16 per GPU x 8 in the release), selection and early stopping on validation Hit@10
  (patience 20 evaluations), best weights kept; each phase checkpoints every epoch under
  ``<out>/phase<k>/checkpoint`` and writes ``<out>/phase<k>/model.safetensors`` + ``done.json`` when
  finished, so a killed run resumes at the last finished phase and epoch.
* Evaluation (PAD's): leave-one-out, full ranking over all items with the user's history masked
  (``train.mask_history=true``), Hit@k / NDCG@k / MRR@k overall, per popularity bin of the target
  item (``pop=1`` most popular .. ``pop=10`` coldest, ``pop=warm``, ``pop=cold``) and for the
  shortest-history users (``hist=short``), see :mod:`recwise.metrics.sequential`.

Result rows (task ``pad``) are written for three models: ``sasrec-bce`` (phase 1: PAD's SASRec
backbone alone), ``pad-aligned`` (phase 2's tower alone) and ``pad`` (phase 3).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

import recwise
from recwise.config import config_from_dict, config_hash, config_to_dict
from recwise.data.cache import default_root
from recwise.data.item_text import item_texts
from recwise.data.sequence import Sequences, eval_inputs, seq_schema, sequence_examples
from recwise.errors import CheckpointError, ConfigError
from recwise.metrics.sequential import (
    evaluate_by_popularity,
    popularity_bins,
    train_item_counts,
)
from recwise.models.seq.pad import PADConfig, PADPhase1, PADPhase2, PADPhase3
from recwise.results import ResultRow, atomic_write_text, write_results
from recwise.train import TrainConfig, Trainer, save_tensors, seed_everything

__all__ = ["PHASE_MODELS", "HashingBackend", "PADRun", "PADTextConfig", "PADTrainConfig", "encode_item_texts",
           "item_texts", "phase_fingerprints", "run", "train_keys"]

TASK = "pad"
PHASE_MODELS = {1: "sasrec-bce", 2: "pad-aligned", 3: "pad"}


@dataclass(frozen=True)
class PADTrainConfig:
    """Training and protocol options (``--set train.<name>=...``); the release's values."""

    epochs: int = 400  # per phase
    epochs2: int = 0  # phase 2's own cap (0: epochs)
    epochs3: int = 0  # phase 3's own cap (0: epochs)
    batch_size: int = 128  # sequences (16 per GPU x 8 GPUs)
    eval_batch_size: int = 1024
    lr1: float = 1e-5  # phase 1 (train_amazon_id_pantry.py, d 128)
    lr2: float = 1e-5  # phase 2 (train_amazon_id_pantry_transfer.py)
    lr3: float = 1e-4  # phase 3 (train_amazon_id_pantry_3tower.py, d 128)
    gate_lr: float = 0.0  # phase 3's gate logits' own learning rate (0: lr3, as released)
    weight_decay: float = 0.1  # l2_weight (AdamW)
    patience: int = 20  # evaluations without a validation Hit@10 gain
    select: str = "hit@10"
    mask_history: bool = True
    windows: Literal["latest", "all"] = "latest"
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option 'train.{name}' must be >= 1; got {getattr(self, name)}")
        for name in ("epochs2", "epochs3"):
            if getattr(self, name) < 0:
                raise ConfigError(f"option 'train.{name}' must be >= 0 (0: train.epochs); got {getattr(self, name)}")
        for name in ("lr1", "lr2", "lr3"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"option 'train.{name}' must be > 0; got {getattr(self, name)}")
        if self.gate_lr < 0:
            raise ConfigError(f"option 'train.gate_lr' must be >= 0 (0: train.lr3); got {self.gate_lr}")
        if self.select not in {f"{m}@{k}" for m in ("hit", "ndcg", "mrr") for k in (5, 10, 20)}:
            raise ConfigError(f"option 'train.select' must be hit@k, ndcg@k or mrr@k (k = 5, 10, 20); "
                              f"got {self.select!r}")


@dataclass(frozen=True)
class PADTextConfig:
    """Phase 0 options (``--set text.<name>=...``)."""

    encoder: str = "minilm"  # minilm | a sentence-transformers folder | hash | (http) a served model name
    backend: Literal["local", "http"] = "local"
    batch_size: int = 64
    hash_dim: int = 256  # encoder=hash only


@dataclass(frozen=True)
class PADRun:
    dataset: str = "ml-100k"
    seed: int = 0
    data_dir: str | None = None


# ------------------------------------------------------------------------------ phase 0: texts
# (the raw item files are read by recwise.data.item_text)


class HashingBackend:
    """A model-free text encoder: signed hashed bag of lower-cased words (``text.encoder=hash``)."""

    name = "hash"

    def __init__(self, dim: int = 256) -> None:
        if dim < 1:
            raise ConfigError(f"option 'text.hash_dim' must be >= 1; got {dim}")
        self.dim = dim
        self.fingerprint = f"hash:{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                h = zlib.crc32(w.encode())
                out[i, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        return out


def _encoder(cfg: PADTextConfig) -> Any:
    from recwise.llm import Encoder, load_encoder

    if cfg.encoder == "hash":
        return Encoder(HashingBackend(cfg.hash_dim), None, show_progress=False)
    return load_encoder(backend=cfg.backend, model=cfg.encoder, batch_size=cfg.batch_size, show_progress=False)


def encode_item_texts(texts: list[str], cfg: PADTextConfig, *, root: Path | None = None) -> tuple[np.ndarray, dict]:
    """(V, D) float32 text matrix (row 0 = zeros, padding) and phase-0 info.

    Cached as ``<root>/prepared/pad-text-<hash>.npy`` keyed by the encoder options and the texts; a
    cache hit loads no model. The LLM layer's own cache also keeps each text's vector.
    """
    key = hashlib.sha256(json.dumps([config_to_dict(cfg), texts]).encode()).hexdigest()[:16]
    path = (root or default_root()) / "prepared" / f"pad-text-{key}.npy"
    t0 = time.perf_counter()
    if path.exists():
        try:
            m = np.load(path, allow_pickle=False)
            return m, {"cache": "hit", "path": str(path), "seconds": time.perf_counter() - t0, "calls": 0}
        except (OSError, ValueError):
            pass  # a torn file: encode again
    enc = _encoder(cfg)
    vec = enc.encode(texts)
    m = np.concatenate([np.zeros((1, vec.shape[1]), dtype=np.float32), vec]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, m)
    os.replace(tmp, path)
    return m, {"cache": "miss", "path": str(path), "seconds": time.perf_counter() - t0,
               "calls": int(getattr(enc, "backend_calls", len(texts)))}


# ---------------------------------------------------------------------------------- phases


def train_keys(seqs: Sequences) -> torch.Tensor:
    """Sorted ``user * (n_items + 1) + item`` over every user's training items (negative sampling)."""
    start, stop = seqs.offsets[:-1], seqs.offsets[1:]
    n = stop - start
    train_stop = np.where(n >= 3, stop - 2, stop)
    lens = train_stop - start
    user = np.repeat(np.arange(seqs.n_users), lens)
    first = np.repeat(start - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    items = seqs.items[first + np.arange(int(lens.sum()))]
    return torch.from_numpy(np.unique(user * (seqs.n_items + 1) + items))


def _train_windows(seqs: Sequences, max_len: int, kind: str) -> dict[str, torch.Tensor]:
    ex = sequence_examples(seqs, max_len, "left")
    if kind == "latest":  # the release: each user's latest max_len + 1 training items, one window
        _, first = np.unique(ex["user"].numpy(), return_index=True)
        ex = {k: v[torch.from_numpy(first)] for k, v in ex.items()}
    return ex


def _phase_epochs(tcfg: PADTrainConfig, phase: int) -> int:
    return {1: tcfg.epochs, 2: tcfg.epochs2 or tcfg.epochs, 3: tcfg.epochs3 or tcfg.epochs}[phase]


def phase_fingerprints(cell: PADRun, seqs: Sequences, tcfg: PADTrainConfig, mcfg: PADConfig,
                       xcfg: PADTextConfig) -> dict[int, str]:
    """One hash per phase over what that phase and the earlier ones depend on, so changing phase
    3's options (``lr3``, ``epochs3``, ``gate_lr``, ``model.gate_init``, ``model.gamma2``) keeps
    finished phases 1-2 reusable on ``resume``."""
    gates = {"gate_init": mcfg.gate_init, "gamma2": mcfg.gamma2}  # phase 3's alone
    default_gates = {k: getattr(PADConfig(), k) for k in gates}
    phase12_model = config_to_dict(replace(mcfg, **default_gates))
    common = {"dataset": cell.dataset, "seed": cell.seed, "n_items": seqs.n_items, "interactions": len(seqs),
              "model": phase12_model, "batch_size": tcfg.batch_size, "weight_decay": tcfg.weight_decay,
              "patience": tcfg.patience, "select": tcfg.select, "mask_history": tcfg.mask_history,
              "windows": tcfg.windows, "version": 1}
    fp1 = config_hash({**common, "phase": 1, "lr": tcfg.lr1, "epochs": _phase_epochs(tcfg, 1)})
    fp2 = config_hash({"after": fp1, "phase": 2, "text": config_to_dict(xcfg), "lr": tcfg.lr2,
                       "epochs": _phase_epochs(tcfg, 2)})
    p3 = {"after": fp2, "phase": 3, "lr": tcfg.lr3, "epochs": _phase_epochs(tcfg, 3)}
    if tcfg.gate_lr:  # unset (and default gates): the earlier hashes hold
        p3["gate_lr"] = tcfg.gate_lr
    if gates != default_gates:
        p3["gates"] = gates
    fp3 = config_hash(p3)
    return {1: fp1, 2: fp2, 3: fp3}


def _metrics_rows(res: dict[str, dict[str, float]], cell: PADRun, model: str, split: str) -> list[ResultRow]:
    return [ResultRow(TASK, cell.dataset, model, cell.seed, split, seg, metric, value)
            for seg, ms in res.items() for metric, value in ms.items() if metric not in ("users", "max_history")]


def _load_weights(path: Path, model: nn.Module) -> None:
    try:
        tensors = load_file(str(path))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot load phase weights {path}: {exc}") from None
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"phase weights {path} do not match the model: missing {missing}, "
                              f"unexpected {unexpected}")


def run(
    cell: PADRun,
    seqs: Sequences,
    *,
    train_options: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    text_options: dict[str, Any] | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    raw_dir: Path | None = None,
    texts: list[str] | None = None,
    root: Path | None = None,
) -> list[ResultRow]:
    """Run phases 0-3 on one dataset with one seed; returns result rows for the three models.

    ``seqs`` must carry ``item_tokens`` (build it with ``load_sequences(..., use_cache=False)``) unless
    ``texts`` (one per item id ``1..n``) is given. With ``out_dir`` and ``resume``, finished phases
    are loaded and an unfinished one continues from its last epoch.
    """
    tcfg = config_from_dict(PADTrainConfig, train_options or {}, where="train")
    mcfg = config_from_dict(PADConfig, model_options or {}, where="model")
    xcfg = config_from_dict(PADTextConfig, text_options or {}, where="text")
    timings: dict[str, float] = {}
    info: dict[str, Any] = {"task": TASK, "dataset": cell.dataset, "seed": cell.seed, "version": recwise.__version__,
                            "train_config": config_to_dict(tcfg), "model_config": config_to_dict(mcfg),
                            "text_config": config_to_dict(xcfg), "phases": {}}

    # phase 0
    t0 = time.perf_counter()
    missing = 0
    if texts is None:
        if seqs.item_tokens is None:
            raise ConfigError("PAD needs the raw item ids to find item texts: load the sequences with use_cache=False")
        if raw_dir is None:
            raise ConfigError("PAD needs the raw data folder (raw_dir) to read item texts")
        texts, missing = item_texts(cell.dataset, raw_dir, seqs.item_tokens)  # type: ignore[arg-type]  # ndarray of raw ids
    if len(texts) != seqs.n_items:
        raise ConfigError(f"got {len(texts)} item texts for {seqs.n_items} items")
    text_np, p0 = encode_item_texts(texts, xcfg, root=root)
    text = torch.from_numpy(text_np)
    timings["phase0"] = time.perf_counter() - t0
    info["phases"]["0"] = {**p0, "items": len(texts), "missing_text": missing, "dim": int(text.shape[1]),
                           "wall_seconds": timings["phase0"], "example_text": texts[0]}

    schema = seq_schema(seqs.n_items)
    counts = train_item_counts(seqs)
    bins = popularity_bins(counts, mcfg.n_bins)
    seen = train_keys(seqs)
    train = _train_windows(seqs, mcfg.max_len, tcfg.windows)
    val = eval_inputs(seqs, "val", mcfg.max_len, "left")
    test = eval_inputs(seqs, "test", mcfg.max_len, "left")
    items = torch.from_numpy(np.asarray(seqs.items))
    fingerprints = phase_fingerprints(cell, seqs, tcfg, mcfg, xcfg)
    rows: list[ResultRow] = []
    models: dict[int, nn.Module] = {}

    def evaluate(m: nn.Module, data: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
        return evaluate_by_popularity(m, data, items, bins, mask=tcfg.mask_history, batch_size=tcfg.eval_batch_size)

    gate_history: list[list[list[float]]] = []  # phase 3's gate weights per epoch
    for phase in (1, 2, 3):
        seed_everything(cell.seed + 1000 * (phase - 1))
        model: nn.Module
        if phase == 1:
            model = PADPhase1(schema, mcfg)
        elif phase == 2:
            model = PADPhase2(schema, mcfg, text)
            model.copy_from(models[1])  # type: ignore[arg-type]
        else:
            model = PADPhase3(schema, mcfg, text, torch.from_numpy(bins))
            model.copy_from(models[1], models[2])  # type: ignore[arg-type]
        model.set_seen(seen)
        pdir = out_dir / f"phase{phase}" if out_dir is not None else None
        has_done = pdir is not None and (pdir / "done.json").exists()
        done = json.loads((pdir / "done.json").read_text()) if has_done else None
        fingerprint = fingerprints[phase]
        t0 = time.perf_counter()
        if resume and done is not None and done.get("fingerprint") == fingerprint:
            _load_weights(pdir / "model.safetensors", model)
            pinfo = done
        else:
            lr = (tcfg.lr1, tcfg.lr2, tcfg.lr3)[phase - 1]
            trc = TrainConfig(epochs=_phase_epochs(tcfg, phase), batch_size=tcfg.batch_size,
                              eval_batch_size=tcfg.eval_batch_size, lr=lr, weight_decay=tcfg.weight_decay,
                              patience=tcfg.patience, seed=cell.seed, device=tcfg.device)

            def monitor(m: nn.Module) -> float:
                if isinstance(m, PADPhase3):  # the gates' path, epoch by epoch (this process's epochs)
                    gate_history.append(m.bin_weights().tolist())
                return evaluate(m, val)["all"][tcfg.select]

            trainer = Trainer(model, trc, loss_fn=lambda m, b: m.loss(b), monitor=monitor, mode="max", run_dir=pdir,
                              progress=progress, extra_state={"phase": phase, "fingerprint": fingerprint})
            # the release's AdamW; phase 3 with its two parameter groups
            groups = (model.param_groups(lr, tcfg.weight_decay, tcfg.gate_lr or lr)
                      if phase == 3 else model.parameters())
            trainer.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=tcfg.weight_decay)
            ckpt = trainer.checkpoint_dir
            has_ckpt = ckpt is not None and (ckpt.exists() or ckpt.with_name(ckpt.name + ".old").exists())
            result = trainer.fit(train, resume=resume and has_ckpt)
            pinfo = {"fingerprint": fingerprint, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                     "best_val": result.best_score, "stopped_early": result.stopped_early,
                     "train_seconds": result.train_seconds,
                     "seconds_per_epoch": result.train_seconds / max(result.epochs_run, 1),
                     "history": result.history}
            if phase == 3 and gate_history:
                pinfo["gate_history"] = gate_history
            if pdir is not None:
                save_tensors(pdir / "model.safetensors", model.state_dict())
                atomic_write_text(pdir / "done.json", json.dumps({**pinfo, "wall_seconds": time.perf_counter() - t0},
                                                                 indent=1))
        model.to("cpu")
        models[phase] = model
        timings[f"phase{phase}"] = float(pinfo.get("wall_seconds", time.perf_counter() - t0))
        res_split = {}
        for split, data in (("val", val), ("test", test)):
            res = evaluate(model, data)
            res_split[split] = res
            rows += _metrics_rows(res, cell, PHASE_MODELS[phase], split)
        info["phases"][str(phase)] = {k: v for k, v in pinfo.items() if k != "history"} | {
            "wall_seconds": timings[f"phase{phase}"], "test_all": res_split["test"]["all"]}
        if phase == 3:
            info["gate_weights"] = models[3].bin_weights().tolist()
    info["timings"] = timings
    info["bins"] = {"items_per_bin": np.bincount(bins, minlength=mcfg.n_bins + 1)[1:].tolist(),
                    "test_users_per_bin": [res_split["test"][f"pop={b}"]["users"] for b in range(1, mcfg.n_bins + 1)],
                    "short_history_max": res_split["test"].get("hist=short", {}).get("max_history")}
    if out_dir is not None:
        write_results(out_dir / "results.csv", rows)
        atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=str))
    return rows

