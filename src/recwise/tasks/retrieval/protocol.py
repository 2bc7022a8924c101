"""The retrieval protocol: k-fold over queries, one arm per cell, TREC runs and ranx metrics.

A cell is one *arm* and one seed on one collection:

- ``bm25``: bm25s over title + text;
- ``zeroshot``: the dense bi-encoder as shipped (MiniLM by default), exact faiss search;
- ``finetune-<source>``: the bi-encoder fine-tuned with sentence-transformers' trainer and
  MultipleNegativesRankingLoss on (query, judged positive, negative) triples, negatives from
  ``random``, ``inbatch`` (none: in-batch only), ``bm25`` / ``dense`` (mined in a rank window,
  judged positives removed), ``synthetic`` (LLM-written, see :mod:`.synthesis`) or
  ``hybrid-<p>`` (per training triple: synthetic with probability p, else mined).

The judged queries are split into ``folds.k`` folds by ``folds.seed`` (the same folds for every arm
and seed); fold i is tested with a model trained on the other folds' queries (the corpus is
shared). Every query is tested once, so the ``all`` rows are means over all judged queries and
``fold=<i>`` rows the means per fold. The cell writes ``results.csv``, ``runs/<arm>.trec`` (every
judged query, each from its test fold), ``per_query.json`` (for the paired tests of ``bench``),
``run.json`` (timings, negative counts, the false-negative audit, synthesis counts) and, for
synthetic arms, ``negatives.jsonl``. Finished folds are kept in ``folds/``; ``--resume`` continues
from the first missing fold.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recwise.config import config_from_dict
from recwise.data.retrieval import Collection
from recwise.errors import ConfigError
from recwise.metrics.retrieval import DEFAULT_METRICS, per_query
from recwise.results import ResultRow, atomic_write_text, write_results
from recwise.retrieval import (
    BM25Config,
    BM25Retriever,
    DenseConfig,
    DenseRetriever,
    FaissIndex,
    FinetuneConfig,
    Ranking,
    SentenceEncoder,
    false_negative_audit,
    finetune,
    load_dense_encoder,
    local_sentence_transformer,
    mine,
    random_negatives,
    write_trec,
)
from recwise.tasks.retrieval.synthesis import SynthConfig, synthesise

__all__ = ["SCOPES", "FoldConfig", "NegConfig", "parse_arm", "check_options", "folds_of", "run", "synthesise_all"]

SOURCES = ("random", "inbatch", "bm25", "dense", "synthetic", "hybrid")
SCOPES = ("train", "bm25", "dense", "neg", "synth", "folds", "data")
AUDIT_WINDOWS = ((1, 10), (11, 30), (31, 100), (101, 200))
DEPTH = 100  # documents per query in the run files (Recall@100)


@dataclass(frozen=True)
class FoldConfig:
    """``k`` folds over the judged queries, drawn by ``seed`` (the same for every arm and training seed)."""

    k: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise ConfigError(f"option 'folds.k' must be an int >= 2; got {self.k!r}")


@dataclass(frozen=True)
class NegConfig:
    """Mined negatives: the rank window ``[lo, hi]`` (1-based) and the miner hybrid and synthetic fall back on."""

    lo: int = 10
    hi: int = 100
    miner: Literal["bm25", "dense"] = "bm25"

    def __post_init__(self) -> None:
        if not (isinstance(self.lo, int) and isinstance(self.hi, int) and 1 <= self.lo <= self.hi <= 1000):
            raise ConfigError(f"options 'neg.lo' / 'neg.hi' must satisfy 1 <= lo <= hi <= 1000; "
                              f"got {self.lo}, {self.hi}")


@dataclass(frozen=True)
class DataConfig:
    """BEIR only: the qrels split that holds the judgments."""

    split: str = "test"


CONFIGS: dict[str, type] = {"train": FinetuneConfig, "bm25": BM25Config, "dense": DenseConfig, "neg": NegConfig,
                            "synth": SynthConfig, "folds": FoldConfig, "data": DataConfig}


def parse_arm(name: str) -> tuple[str, str | None, float | None]:
    """``bm25`` / ``zeroshot`` / ``finetune-<source>`` / ``finetune-hybrid-<p>`` -> (kind, source, p)."""
    if name in ("bm25", "zeroshot"):
        return name, None, None
    if name.startswith("finetune-"):
        rest = name.removeprefix("finetune-")
        if rest.startswith("hybrid-"):
            try:
                p = float(rest.removeprefix("hybrid-"))
            except ValueError:
                p = -1.0
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"arm {name!r}: the mix p of finetune-hybrid-<p> must be a number in [0, 1]")
            return "finetune", "hybrid", p
        if rest in SOURCES and rest != "hybrid":
            return "finetune", rest, None
    from recwise.registry import did_you_mean

    known = ["bm25", "zeroshot", *(f"finetune-{s}" for s in SOURCES if s != "hybrid"), "finetune-hybrid-<p>"]
    raise ConfigError(f"unknown arm {name!r}{did_you_mean(name, known)}")


def configs(options: dict[str, Any]) -> dict[str, Any]:
    """Each scope's frozen config from the ``--set`` values (unknown keys are errors naming the scope)."""
    return {s: config_from_dict(cls, dict(options.get(s, {})), where=s) for s, cls in CONFIGS.items()}


def check_options(options: dict[str, Any]) -> None:
    configs(options)


def folds_of(n_queries: int, cfg: FoldConfig) -> np.ndarray:
    """Fold number of each judged query (a permutation by ``cfg.seed`` cut into ``k`` near-equal parts)."""
    if n_queries < cfg.k:
        raise ConfigError(f"option 'folds.k' = {cfg.k} exceeds the {n_queries} judged queries")
    perm = np.random.default_rng(cfg.seed).permutation(n_queries)
    fold = np.empty(n_queries, dtype=np.int64)
    for i, part in enumerate(np.array_split(perm, cfg.k)):
        fold[part] = i
    return fold


@dataclass
class _Context:
    col: Collection
    texts: list[str]
    judged: np.ndarray
    fold: np.ndarray
    positives: dict[int, dict[int, int]]
    cfg: dict[str, Any]
    progress: bool
    _bm25: BM25Retriever | None = None
    _zeroshot: DenseRetriever | None = None

    def bm25(self) -> BM25Retriever:
        if self._bm25 is None:
            self._bm25 = BM25Retriever(self.cfg["bm25"]).index(self.texts)
        return self._bm25

    def zeroshot(self) -> DenseRetriever:
        if self._zeroshot is None:
            d: DenseConfig = self.cfg["dense"]
            self._zeroshot = DenseRetriever(load_dense_encoder(d, show_progress=self.progress),
                                            FaissIndex(d.index, nlist=d.nlist, nprobe=d.nprobe, hnsw_m=d.hnsw_m))
            self._zeroshot.index(self.texts)
        return self._zeroshot

    def query_texts(self, rows: np.ndarray) -> list[str]:
        return self.col.query_texts.take(rows)


def _ranking_for(ctx: _Context, miner: str, rows: np.ndarray, depth: int) -> Ranking:
    retriever = ctx.bm25() if miner == "bm25" else ctx.zeroshot()
    return retriever.search(ctx.query_texts(rows), depth)


def _triples(ctx: _Context, train_rows: np.ndarray, source: str, p: float | None, seed: int,
             synthetic: dict[int, str], info: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    rng = np.random.default_rng(seed)
    neg: NegConfig = ctx.cfg["neg"]
    miner = source if source in ("bm25", "dense") else neg.miner
    pools: dict[int, np.ndarray] = {}
    if source in ("bm25", "dense", "synthetic", "hybrid"):
        pools = mine(_ranking_for(ctx, miner, train_rows, neg.hi), train_rows, ctx.positives, (neg.lo, neg.hi))
    randoms = random_negatives(ctx.col.n_docs, train_rows, ctx.positives, 8, rng) if source == "random" else {}
    counts = {"triples": 0, "synthetic": 0, "mined": 0, "random": 0, "inbatch": 0, "synthetic_fallback_to_mined": 0}
    cap: int = ctx.cfg["train"].pairs_per_query
    cap_rng = np.random.default_rng([seed, 1])  # its own stream: cap 0 leaves every other draw as it was
    out: list[tuple[str, str, str | None]] = []
    for q in train_rows.tolist():
        qt = ctx.col.query_texts[q]
        docs = sorted(ctx.positives.get(q, {}))
        if 0 < cap < len(docs):
            docs = sorted(cap_rng.choice(docs, size=cap, replace=False).tolist())
        for d in docs:
            pos = ctx.texts[d]
            want_synth = source == "synthetic" or (source == "hybrid" and rng.random() < (p or 0.0))
            negative: str | None
            if source == "inbatch":
                negative, kind = None, "inbatch"
            elif source == "random":
                negative, kind = ctx.texts[int(rng.choice(randoms[q]))], "random"
            elif want_synth and q in synthetic:
                negative, kind = synthetic[q], "synthetic"
            else:
                pool = pools.get(q, np.empty(0, dtype=np.int64))
                if len(pool) == 0:
                    pool = random_negatives(ctx.col.n_docs, [q], ctx.positives, 1, rng)[q]
                negative, kind = ctx.texts[int(rng.choice(pool))], "mined"
                if want_synth:
                    counts["synthetic_fallback_to_mined"] += 1
            counts[kind] += 1
            counts["triples"] += 1
            out.append((qt, pos, negative))
    info.setdefault("negatives", []).append(counts)
    return out


def _synthetic(ctx: _Context, train_rows: np.ndarray, out_dir: Path, info: dict[str, Any],
               generator: Any = None) -> dict[int, str]:
    """One synthetic negative per judged query (from its highest-gain positive), through the LLM cache."""
    from recwise.llm import counted, load_generator

    syn: SynthConfig = ctx.cfg["synth"]
    rows = ctx.judged if syn.queries == 0 else ctx.judged[: syn.queries]
    pairs = []
    for q in rows.tolist():
        best = max(ctx.positives[q].items(), key=lambda kv: (kv[1], -kv[0]))[0]
        pairs.append((q, ctx.col.query_texts[q], ctx.texts[best]))
    if generator is None:
        generator = load_generator(backend=syn.backend, model=syn.model, base_url=syn.base_url)
    generator = counted(generator)  # same cache; counts the rows and completion tokens sent to the model
    neg: NegConfig = ctx.cfg["neg"]
    ranking = _ranking_for(ctx, neg.miner, train_rows, neg.hi)
    pools = mine(ranking, train_rows, ctx.positives, (neg.lo, neg.hi))
    enc = ctx.zeroshot().encoder
    sample = [(q, int(d)) for q, pool in pools.items() for d in pool[:5].tolist()]
    qv = enc.encode([ctx.col.query_texts[q] for q, _ in sample])
    dv = enc.encode([ctx.texts[d] for _, d in sample])
    res = synthesise(generator, enc, pairs, syn, np.sum(qv * dv, axis=1))
    info["synthesis"] = res.counts
    info["synthesis_records"] = res.records
    return res.negatives


def _fold_run(ctx: _Context, arm: str, fold: int, seed: int, out_dir: Path, info: dict[str, Any],
              generator: Any) -> dict[str, dict[str, float]]:
    kind, source, p = parse_arm(arm)
    test_rows = ctx.judged[ctx.fold == fold]
    doc_ids = ctx.col.doc_ids.to_list()
    qids = ctx.col.query_ids.take(test_rows)
    if kind == "bm25":
        return ctx.bm25().search(ctx.query_texts(test_rows), DEPTH).to_run(qids, doc_ids)
    if kind == "zeroshot":
        return ctx.zeroshot().search(ctx.query_texts(test_rows), DEPTH).to_run(qids, doc_ids)
    assert source is not None
    train_rows = ctx.judged[ctx.fold != fold]
    synthetic: dict[int, str] = {}
    if source in ("synthetic", "hybrid"):
        synthetic = _synthetic(ctx, train_rows, out_dir, info, generator)
        synthetic = {q: t for q, t in synthetic.items() if q in set(train_rows.tolist())}  # never a test query's
    triples = _triples(ctx, train_rows, source, p, seed * 1000 + fold, synthetic, info)
    d: DenseConfig = ctx.cfg["dense"]
    if d.backend != "local":
        raise ConfigError("fine-tuning needs a local bi-encoder (dense.backend=local); "
                          "the http encoder is for zero-shot")
    model = local_sentence_transformer(d.model)
    stats = finetune(model, triples, ctx.cfg["train"], seed=seed, progress=ctx.progress)
    info.setdefault("train", []).append({"fold": fold, **stats})
    tuned = DenseRetriever(SentenceEncoder(model, batch_size=d.batch_size, precision=ctx.cfg["train"].precision),
                           FaissIndex(d.index, nlist=d.nlist, nprobe=d.nprobe, hnsw_m=d.hnsw_m)).index(ctx.texts)
    return tuned.search(ctx.query_texts(test_rows), DEPTH).to_run(qids, doc_ids)


def _collect_synthesis(info: dict[str, Any], fold: int, fold_info: dict[str, Any]) -> None:
    if "synthesis" in fold_info:
        info.setdefault("synthesis", []).append({"fold": fold, **fold_info["synthesis"]})
        info.setdefault("synthesis_records", []).extend({"fold": fold, **r} for r in fold_info["synthesis_records"])


def run(col: Collection, arm: str, seed: int, options: dict[str, Any], *, out_dir: Path, dataset: str,
        resume: bool = False, progress: bool = False, generator: Any = None) -> list[ResultRow]:
    """Run one arm with one seed over every fold; write the cell's files; return its rows.

    ``generator``: an LLM :class:`~recwise.llm.Generator` to use instead of the one ``synth.*`` names (tests).
    """
    cfg = configs(options)
    kind, source, _ = parse_arm(arm)
    t0 = time.perf_counter()
    judged = col.judged_queries()
    ctx = _Context(col, col.doc_texts(), judged, folds_of(len(judged), cfg["folds"]), col.relevant(), cfg, progress)
    info: dict[str, Any] = {"arm": arm, "seed": seed, "dataset": dataset, "n_docs": col.n_docs,
                            "judged_queries": len(judged), "options": {k: asdict(v) for k, v in cfg.items()}}
    fold_dir = out_dir / "folds"
    fold_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        for old in fold_dir.glob("fold*.json"):
            old.unlink()
    runs: dict[str, dict[str, float]] = {}
    fold_seconds = []
    for fold in range(cfg["folds"].k):
        path = fold_dir / f"fold{fold}.json"
        if resume and path.exists():
            saved = json.loads(path.read_text())
            if saved.get("options") == info["options"]:
                runs.update(saved["run"])
                for key in ("negatives", "train"):
                    info.setdefault(key, []).extend(saved["info"].get(key, []))
                _collect_synthesis(info, fold, saved["info"])
                continue
        t = time.perf_counter()
        fold_info: dict[str, Any] = {}
        fold_run = _fold_run(ctx, arm, fold, seed, out_dir, fold_info, generator)
        fold_seconds.append(time.perf_counter() - t)
        atomic_write_text(path, json.dumps({"options": info["options"], "run": fold_run, "info": fold_info}))
        runs.update(fold_run)
        for key in ("negatives", "train"):
            info.setdefault(key, []).extend(fold_info.get(key, []))
        _collect_synthesis(info, fold, fold_info)
    records = info.pop("synthesis_records", [])
    if records:  # every fold's prompts, drafts, reflections and verdicts (`recwise retrieval negatives show`)
        atomic_write_text(out_dir / "negatives.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                               for r in records))
    qids = col.query_ids.take(judged)
    ordered = {q: runs[q] for q in qids}
    write_trec(out_dir / "runs" / f"{arm}.trec", ordered, tag=arm)
    qrels = col.qrels_dict(judged)
    values = per_query(qrels, ordered, DEFAULT_METRICS)
    order = sorted(qrels)  # per_query's order
    fold_of = {col.query_ids[int(q)]: int(f) for q, f in zip(judged, ctx.fold)}
    rows = [ResultRow("retrieval", dataset, arm, seed, "test", "all", m, float(v.mean())) for m, v in values.items()]
    for fold in range(cfg["folds"].k):
        mask = np.asarray([fold_of[q] == fold for q in order])
        rows += [ResultRow("retrieval", dataset, arm, seed, "test", f"fold={fold}", m, float(v[mask].mean()))
                 for m, v in values.items()]
    # the ranking an arm reads (bm25, zeroshot: dense) or mines from (its source; hybrid: neg.miner)
    miner = {"bm25": "bm25", "zeroshot": "dense"}.get(kind) or {"bm25": "bm25", "dense": "dense",
                                                               "hybrid": cfg["neg"].miner}.get(source or "")
    if miner is not None:
        ranking = _ranking_for(ctx, miner, judged, max(w[1] for w in AUDIT_WINDOWS))
        info["false_negative_audit"] = {"miner": miner,
                                        "windows": false_negative_audit(ranking, judged, ctx.positives, AUDIT_WINDOWS)}
    info.update(fold_seconds=fold_seconds, wall_seconds=time.perf_counter() - t0)
    write_results(out_dir / "results.csv", rows)
    atomic_write_text(out_dir / "per_query.json", json.dumps({"queries": order, **{m: v.tolist() for m, v in
                                                                                    values.items()}}))
    atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=str))
    return rows


def synthesise_all(col: Collection, options: dict[str, Any], *, log_path: Path | None = None,
                   generator: Any = None, progress: bool = False) -> dict[str, Any]:
    """The synthesis stage alone, for every judged query (or ``synth.queries``): fills the LLM cache
    that the synthetic and hybrid cells then read, and returns the counts (``log_path``: the JSONL).

    The guard band comes from the mined negatives of all judged queries (a cell's fold uses its
    training queries' only, so its kept set can differ slightly; the LLM prompts are the same).
    """
    cfg = configs(options)
    judged = col.judged_queries()
    ctx = _Context(col, col.doc_texts(), judged, folds_of(len(judged), cfg["folds"]), col.relevant(), cfg, progress)
    info: dict[str, Any] = {}
    _synthetic(ctx, judged, log_path.parent if log_path else Path("."), info, generator)
    if log_path is not None:
        atomic_write_text(log_path, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                            for r in info["synthesis_records"]))
    return dict(info["synthesis"])
