"""The RAG protocol: retrieve -> (rerank) -> generate, and RADIO's stages to train the reranker.

One cell = one *arm* and one seed on one QA set. Arms (:data:`ARMS`):

| arm | reranker | training labels |
|---|---|---|
| ``retriever`` | none: the retriever's top ``keep`` | - |
| ``reranker-untuned`` | the cross-encoder as loaded | - |
| ``reranker`` | fine-tuned, no alignment | answer match (below) |
| ``radio`` | fine-tuned | RADIO: fused (rationale + retriever) order, shift sampler |
| ``radio-retrieval-labels`` | fine-tuned | retriever order only |
| ``radio-rationale-only`` | fine-tuned | rationale-similarity order only |
| ``radio-no-rationale`` | fine-tuned | fused order with ``question. answers`` (no rationale) |

The unaligned ``reranker`` learns from answer matches, the usual label when a QA set has no
relevance judgments: positive = the best-ranked candidate that holds a gold answer; negatives at
the sampler's ranks of the retriever's order of the candidates without one.

Stages (each a file under ``stages/``, skipped on ``--resume`` when its options match):
``retrieve`` (train candidates, ``radio.candidates`` = 50; test candidates, ``eval.depth`` = 20),
``rationales`` (LLM, cached), ``rank`` (encoder similarity to question + answers + rationale),
``fuse`` (min-max, ``radio.w_rationale`` / ``radio.w_retrieval``), ``groups`` (sampler),
``finetune`` (the reranker, saved under ``checkpoint/reranker``) and ``eval`` (rerank to
``eval.keep`` = 5, generate, score). Files: ``results.csv``, ``predictions.jsonl``, ``per_query.json``,
``runs/test-<arm>.trec``, ``groups.jsonl``, ``rationales.jsonl``, ``run.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recwise.config import config_from_dict
from recwise.data.qa import QASet
from recwise.errors import ConfigError
from recwise.metrics.qa import answer_in_texts, choice_accuracy, exact_match, token_f1
from recwise.results import ResultRow, atomic_write_text, write_results
from recwise.retrieval import BM25Config, BM25Retriever, DenseConfig, DenseRetriever, FaissIndex, Ranking, write_trec
from recwise.retrieval.dense import load_dense_encoder
from recwise.retrieval.rag import (
    SAMPLERS,
    answer_prompt,
    clean_answer,
    fuse,
    rationale_prompt,
    shift_group,
    similarity_ranking,
)
from recwise.retrieval.rerank import RerankerConfig

__all__ = ["ARMS", "SCOPES", "check_options", "configs", "run"]

ARMS = ("retriever", "reranker-untuned", "reranker", "radio", "radio-retrieval-labels", "radio-rationale-only",
        "radio-no-rationale")
SCOPES = ("retrieve", "dense", "bm25", "rerank", "radio", "llm", "eval", "data")
TASK = "rag"


@dataclass(frozen=True)
class RetrieveConfig:
    """The first-stage retriever: ``dense`` (MiniLM + faiss, see ``dense.*``) or ``bm25``."""

    retriever: Literal["dense", "bm25"] = "dense"


@dataclass(frozen=True)
class RadioConfig:
    """RADIO's label construction (released values as defaults, except ``train_questions``).

    ``train_questions``: the first N training questions get rationales and groups (RADIO: 20,001;
    0 = all). ``rationale_*``: the rationale call (gpt-4o-mini in the paper: temperature 0.2, seed
    42; max tokens 1000 there, 96 here for a 135M model on CPU).
    """

    train_questions: int = 300
    candidates: int = 50
    sampler: str = "shift"
    w_rationale: float = 0.5
    w_retrieval: float = 0.5
    rationale_max_tokens: int = 96
    rationale_temperature: float = 0.2
    rationale_seed: int = 42

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"option 'radio.sampler' must be one of {sorted(SAMPLERS)}; got {self.sampler!r}")
        if self.train_questions < 0:
            raise ConfigError(f"option 'radio.train_questions' must be >= 0; got {self.train_questions}")
        need = max(SAMPLERS[self.sampler]) + 1
        if self.candidates < need:
            raise ConfigError(f"option 'radio.candidates' must be >= {need} for sampler {self.sampler!r}; "
                              f"got {self.candidates}")
        if self.w_rationale < 0 or self.w_retrieval < 0 or self.w_rationale + self.w_retrieval <= 0:
            raise ConfigError("options 'radio.w_rationale' / 'radio.w_retrieval' must be >= 0 and not both 0")
        if self.rationale_max_tokens < 1:
            raise ConfigError(f"option 'radio.rationale_max_tokens' must be >= 1; got {self.rationale_max_tokens}")


@dataclass(frozen=True)
class LLMConfig:
    """The generator (and rationale writer): ``model`` on ``backend`` (``http`` + ``base_url``: any
    OpenAI-compatible server); ``max_tokens`` per answer (greedy); ``dtype``: the transformers
    backend's weights (``bfloat16``: 4-5x llama.cpp's speed on this task's long prompts on an
    AMX CPU; docs/llm.md)."""

    model: str = "smollm2"
    backend: Literal["local", "llamacpp", "transformers", "http"] = "local"
    base_url: str | None = None
    max_tokens: int = 24
    dtype: Literal["float32", "bfloat16", "float16"] | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"option 'llm.max_tokens' must be >= 1; got {self.max_tokens}")

    def key(self) -> dict[str, Any]:
        """The stage key: every field, ``dtype`` only when set (stage files made before it existed stay valid)."""
        return {k: v for k, v in asdict(self).items() if not (k == "dtype" and v is None)}


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation: retrieve ``depth`` (20), keep ``keep`` (5) for the generator; ``limit``: first N test questions
    (0 = all)."""

    depth: int = 20
    keep: int = 5
    limit: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.keep <= self.depth:
            raise ConfigError(f"options 'eval.keep' / 'eval.depth' must satisfy 1 <= keep <= depth; "
                              f"got {self.keep}, {self.depth}")
        if self.limit < 0:
            raise ConfigError(f"option 'eval.limit' (--limit) must be >= 0; got {self.limit}")


@dataclass(frozen=True)
class DataConfig:
    """geofacts: ``seed`` (the country split), ``test_share``, ``min_city_population``; files: ``corpus``,
    ``test_split``."""

    seed: int = 0
    test_share: float = 0.3
    min_city_population: int = 1_000_000
    corpus: str | None = None
    test_split: str = "test"


CONFIGS: dict[str, type] = {"retrieve": RetrieveConfig, "dense": DenseConfig, "bm25": BM25Config,
                            "rerank": RerankerConfig, "radio": RadioConfig, "llm": LLMConfig, "eval": EvalConfig,
                            "data": DataConfig}


def configs(options: dict[str, Any]) -> dict[str, Any]:
    """Each scope's frozen config from the ``--set`` values (unknown keys are errors naming the scope)."""
    unknown = sorted(set(options) - set(CONFIGS) - {"data_key"})
    if unknown:
        raise ConfigError(f"unknown option scope {unknown[0]!r}; scopes: {', '.join(CONFIGS)}")
    return {s: config_from_dict(cls, dict(options.get(s, {})), where=s) for s, cls in CONFIGS.items()}


def check_options(options: dict[str, Any]) -> None:
    configs(options)


def check_arm(arm: str) -> None:
    if arm not in ARMS:
        from recwise.registry import did_you_mean

        raise ConfigError(f"unknown arm {arm!r}{did_you_mean(arm, ARMS)}")


# ---------------------------------------------------------------------------------------------
# stages


class _Stages:
    """Named stages whose outputs are JSON files under ``stages/``; a stage is reused on resume when its key matches."""

    def __init__(self, out_dir: Path, resume: bool) -> None:
        self.dir = out_dir / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []

    def run(self, name: str, key: Any, fn: Any) -> Any:
        path = self.dir / f"{name}.json"
        if self.resume and path.exists():
            saved = json.loads(path.read_text())
            if saved.get("key") == key:
                self.reused.append(name)
                return saved["value"]
        t = time.perf_counter()
        value = fn()
        self.seconds[name] = time.perf_counter() - t
        atomic_write_text(path, json.dumps({"key": key, "value": value, "seconds": self.seconds[name]}))
        return value


def _ranking_json(r: Ranking) -> dict[str, Any]:
    return {"rows": r.rows.tolist(), "scores": np.where(np.isfinite(r.scores), r.scores, -1e30).tolist()}


def _ranking(d: dict[str, Any]) -> Ranking:
    scores = np.asarray(d["scores"], dtype=np.float32)
    return Ranking(np.asarray(d["rows"], dtype=np.int64).reshape(scores.shape), np.where(scores <= -1e29, -np.inf,
                                                                                        scores).astype(np.float32))


@dataclass
class _Context:
    qa: QASet
    texts: list[str]
    cfg: dict[str, Any]
    progress: bool
    _retriever: Any = None
    _encoder: Any = None

    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = load_dense_encoder(self.cfg["dense"], show_progress=self.progress)
        return self._encoder

    def retriever(self) -> Any:
        if self._retriever is None:
            if self.cfg["retrieve"].retriever == "bm25":
                self._retriever = BM25Retriever(self.cfg["bm25"]).index(self.texts)
            else:
                d: DenseConfig = self.cfg["dense"]
                self._retriever = DenseRetriever(self.encoder(), FaissIndex(d.index, nlist=d.nlist, nprobe=d.nprobe,
                                                                            hnsw_m=d.hnsw_m)).index(self.texts)
        return self._retriever

    def questions(self, rows: np.ndarray) -> list[str]:
        return self.qa.collection.query_texts.take(rows)


def _generate(generator: Any, prompts: list[Any], params: Any) -> tuple[list[str], dict[str, Any]]:
    """One batched call; returns the texts and the call's counts (LLM calls, cache hits, wall seconds)."""
    before = generator.backend_calls
    t = time.perf_counter()
    texts = generator.generate(prompts, params) if prompts else []
    calls = generator.backend_calls - before
    return texts, {"prompts": len(prompts), "llm_calls": calls, "cache_hits": len(prompts) - calls,
                   "wall_seconds": time.perf_counter() - t}


def _train_rows(ctx: _Context) -> np.ndarray:
    rows = ctx.qa.rows("train")
    n = ctx.cfg["radio"].train_questions
    return rows[:n] if n else rows


def _labels(ctx: _Context, arm: str, train: np.ndarray, cand: Ranking, stages: _Stages, generator: Any,
            info: dict[str, Any]) -> list[list[int]] | None:
    """The order each training question's groups are drawn from (None for the answer-match baseline)."""
    radio: RadioConfig = ctx.cfg["radio"]
    if arm == "reranker":
        return None
    if arm == "radio-retrieval-labels":
        return cand.rows.tolist()
    answers = [ctx.qa.answers[int(q)] for q in train]
    questions = ctx.questions(train)
    rationales: list[str] = [""] * len(train)
    if arm != "radio-no-rationale":
        def write() -> dict[str, Any]:
            from recwise.llm import GenerationParams

            prompts = [rationale_prompt(q, a) for q, a in zip(questions, answers)]
            params = GenerationParams(temperature=radio.rationale_temperature, max_tokens=radio.rationale_max_tokens,
                                      seed=radio.rationale_seed)
            texts, counts = _generate(generator, prompts, params)
            texts = [t.strip() for t in texts]
            counts["empty"] = sum(1 for t in texts if not t)
            counts["mention_gold"] = sum(1 for t, a in zip(texts, answers) if t and answer_in_texts([t], a))
            return {"texts": texts, "counts": counts}

        got = stages.run("rationales", {"q": train.tolist(), "llm": ctx.cfg["llm"].key(),
                                        "radio": asdict(radio)}, write)
        rationales = got["texts"]
        info["rationales"] = got["counts"]
        atomic_write_text(stages.dir.parent / "rationales.jsonl", "".join(
            json.dumps({"question": q, "answers": list(a), "rationale": r, "empty": not r,
                        "mentions_gold": bool(r) and answer_in_texts([r], a)}, ensure_ascii=False) + "\n"
            for q, a, r in zip(questions, answers, rationales)))

    def rank() -> dict[str, Any]:
        # empty rationale (counted above): the text falls back to question + answers
        texts = [f"{q}. {' / '.join(a)}. {r}" if r else f"{q}. {' / '.join(a)}"
                 for q, a, r in zip(questions, answers, rationales)]
        enc = ctx.encoder()
        doc_vecs = np.zeros((len(ctx.texts), 1), dtype=np.float32)
        used = np.unique(cand.rows[cand.rows >= 0])
        vecs = enc.encode([ctx.texts[int(r)] for r in used])
        doc_vecs = np.zeros((len(ctx.texts), vecs.shape[1]), dtype=np.float32)
        doc_vecs[used] = vecs
        return _ranking_json(similarity_ranking(cand, enc.encode(texts), doc_vecs))

    sim = _ranking(stages.run("rank", {"q": train.tolist(), "arm_text": arm == "radio-no-rationale",
                                       "dense": asdict(ctx.cfg["dense"]), "r": rationales}, rank))
    if arm == "radio-rationale-only":
        return sim.rows.tolist()
    fused = stages.run("fuse", {"q": train.tolist(), "w": [radio.w_rationale, radio.w_retrieval],
                                "arm_text": arm == "radio-no-rationale", "r": rationales},
                       lambda: _ranking_json(fuse(sim, cand, radio.w_rationale, radio.w_retrieval)))
    return _ranking(fused).rows.tolist()


def _groups(ctx: _Context, arm: str, train: np.ndarray, cand: Ranking, orders: list[list[int]] | None,
            info: dict[str, Any]) -> list[dict[str, Any]]:
    sampler = ctx.cfg["radio"].sampler
    counts = {"questions": len(train), "groups": 0, "fallback": 0, "skipped_short": 0, "skipped_no_answer": 0}
    audit = not ctx.qa.choices  # a multiple-choice answer (an option's text) is not looked for in documents
    if audit:  # how often a group's positive, and its negatives, hold a gold answer (the answer-match labels' rule)
        counts.update(positive_with_answer=0, negatives_with_answer=0, negatives=0, groups_against_answers=0)
    out = []
    for i, q in enumerate(train.tolist()):
        if orders is None:  # answer-match labels: first candidate holding a gold answer, the rest as the list
            rows = [int(r) for r in cand.rows[i].tolist() if r >= 0]
            hit = next((r for r in rows if answer_in_texts([ctx.texts[r]], ctx.qa.answers[q])), None)
            if hit is None:
                counts["skipped_no_answer"] += 1
                continue
            order = [hit] + [r for r in rows if r != hit and not answer_in_texts([ctx.texts[r]], ctx.qa.answers[q])]
        else:
            order = orders[i]
        g = shift_group(order, sampler)
        if g is None:
            counts["skipped_short"] += 1
            continue
        counts["fallback"] += int(g.fallback)
        counts["groups"] += 1
        if audit:
            gold = ctx.qa.answers[q]
            pos = answer_in_texts([ctx.texts[g.positive]], gold)
            neg = sum(answer_in_texts([ctx.texts[r]], gold) for r in g.negatives)
            counts["positive_with_answer"] += int(pos)
            counts["negatives_with_answer"] += neg
            counts["negatives"] += len(g.negatives)
            counts["groups_against_answers"] += int(not pos or neg > 0)  # disagrees with answer matching
        out.append({"question": int(q), "positive": g.positive, "negatives": list(g.negatives),
                    "fallback": g.fallback})
    info["groups"] = counts
    return out


def _reranker(ctx: _Context, arm: str, seed: int, out_dir: Path, stages: _Stages, generator: Any,
              info: dict[str, Any]) -> Any:
    from recwise.retrieval.rerank import CrossEncoderReranker, Group

    cfg: RerankerConfig = ctx.cfg["rerank"]
    if arm == "reranker-untuned":
        return CrossEncoderReranker(cfg)
    train = _train_rows(ctx)
    radio: RadioConfig = ctx.cfg["radio"]
    cand = _ranking(stages.run("retrieve-train", {"q": train.tolist(), "k": radio.candidates,
                                                  "retrieve": asdict(ctx.cfg["retrieve"]),
                                                  "dense": asdict(ctx.cfg["dense"]), "bm25": asdict(ctx.cfg["bm25"])},
                               lambda: _ranking_json(ctx.retriever().search(ctx.questions(train), radio.candidates))))
    orders = _labels(ctx, arm, train, cand, stages, generator, info)
    groups = _groups(ctx, arm, train, cand, orders, info)
    atomic_write_text(out_dir / "groups.jsonl", "".join(json.dumps(
        {"question": ctx.qa.collection.query_texts[g["question"]], "positive": ctx.qa.collection.doc_ids[g["positive"]],
         "negatives": [ctx.qa.collection.doc_ids[r] for r in g["negatives"]], "fallback": g["fallback"]}) + "\n"
        for g in groups))
    folder = out_dir / "checkpoint" / "reranker"
    key = {"groups": [[g["question"], g["positive"], *g["negatives"]] for g in groups], "rerank": asdict(cfg),
           "seed": seed}

    def train_it() -> dict[str, float]:
        rr = CrossEncoderReranker(cfg).fit(
            [Group(ctx.qa.collection.query_texts[g["question"]], ctx.texts[g["positive"]],
                   tuple(ctx.texts[r] for r in g["negatives"])) for g in groups], seed=seed, progress=ctx.progress)
        rr.save(folder)
        return rr.fit_stats_

    info["finetune"] = stages.run("finetune", key, train_it)
    return CrossEncoderReranker(cfg, folder=folder)


def run(qa: QASet, arm: str, seed: int, options: dict[str, Any], *, out_dir: Path, dataset: str,
        resume: bool = False, progress: bool = False, generator: Any = None) -> list[ResultRow]:
    """Run one arm with one seed; write the cell's files; return its rows.

    ``generator``: an LLM :class:`~recwise.llm.Generator` instead of the one ``llm.*`` names (tests).
    """
    check_arm(arm)
    cfg = configs(options)
    t0 = time.perf_counter()
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = _Stages(out_dir, resume)
    llm: LLMConfig = cfg["llm"]
    if generator is None:
        from recwise.llm import load_generator

        generator = load_generator(backend=llm.backend, model=llm.model, base_url=llm.base_url, dtype=llm.dtype)
    ctx = _Context(qa, qa.collection.doc_texts(), cfg, progress)
    ev: EvalConfig = cfg["eval"]
    test = qa.rows("test")
    if ev.limit:
        test = test[: ev.limit]
    info: dict[str, Any] = {"arm": arm, "seed": seed, "dataset": dataset, "n_docs": qa.collection.n_docs,
                            "test_questions": len(test), "options": {k: asdict(v) for k, v in cfg.items()}}
    cand = _ranking(stages.run("retrieve-test", {"q": test.tolist(), "k": ev.depth,
                                                 "retrieve": asdict(cfg["retrieve"]), "dense": asdict(cfg["dense"]),
                                                 "bm25": asdict(cfg["bm25"])},
                               lambda: _ranking_json(ctx.retriever().search(ctx.questions(test), ev.depth))))
    questions = ctx.questions(test)
    if arm == "retriever":
        top = Ranking(cand.rows[:, : ev.keep], cand.scores[:, : ev.keep])
    else:
        reranker = _reranker(ctx, arm, seed, out_dir, stages, generator, info)
        top = _ranking(stages.run("rerank-test", {"q": test.tolist(), "arm": arm, "ft": info.get("finetune"),
                                                  "keep": ev.keep, "rerank": asdict(cfg["rerank"])},
                                  lambda: _ranking_json(reranker.rerank(questions, cand, ctx.texts, ev.keep))))
    choices = qa.choices

    def answer() -> dict[str, Any]:
        from recwise.llm import GenerationParams

        prompts = [answer_prompt(q, [ctx.texts[r] for r in rows if r >= 0], choices[int(i)] if choices else ())
                   for q, rows, i in zip(questions, top.rows.tolist(), test.tolist())]
        texts, counts = _generate(generator, prompts, GenerationParams(max_tokens=llm.max_tokens, temperature=0.0))
        return {"texts": texts, "counts": counts}

    gen = stages.run("generate", {"q": test.tolist(), "top": top.rows.tolist(), "llm": llm.key()}, answer)
    info["generate"] = gen["counts"]
    col = qa.collection
    rk, rd, sk = f"answer_recall@{ev.keep}", f"answer_recall@{ev.depth}", f"support_recall@{ev.keep}"
    per_q: dict[str, list[float]] = {rk: [], rd: [], "em": [], "f1": [], "acc": []}
    if choices:
        per_q["accuracy"] = []
    rel = col.relevant()
    if rel:
        per_q[sk] = []
    records = []
    for j, q in enumerate(test.tolist()):
        gold = qa.answers[q]
        pred = clean_answer(gen["texts"][j])
        kept = [int(r) for r in top.rows[j].tolist() if r >= 0]
        deep = [int(r) for r in cand.rows[j].tolist() if r >= 0]
        rec = {"question": col.query_texts[q], "answers": list(gold), "retrieved": [col.doc_ids[r] for r in deep],
               "reranked": [col.doc_ids[r] for r in kept], "generated": gen["texts"][j], "answer": pred,
               "em": exact_match(pred, gold), "f1": token_f1(pred, gold), "kind": qa.kinds[q]}
        per_q["em"].append(rec["em"])
        per_q["f1"].append(rec["f1"])
        per_q["acc"].append(float(answer_in_texts([pred], gold)))  # FlashRAG's "acc": a gold answer inside the text
        per_q[rk].append(float(answer_in_texts([ctx.texts[r] for r in kept], gold)))
        per_q[rd].append(float(answer_in_texts([ctx.texts[r] for r in deep], gold)))
        if choices:
            rec["accuracy"] = choice_accuracy(gen["texts"][j], gold)
            per_q["accuracy"].append(rec["accuracy"])
        if rel:
            per_q[sk].append(float(bool(set(kept) & set(rel.get(q, {})))))
        records.append(rec)
    rows = [ResultRow(TASK, dataset, arm, seed, "test", "all", m, float(np.mean(v)) if v else float("nan"))
            for m, v in per_q.items()]
    kinds = np.asarray([qa.kinds[q] for q in test.tolist()])
    for k in sorted(set(kinds.tolist())):
        mask = kinds == k
        rows += [ResultRow(TASK, dataset, arm, seed, "test", f"kind={k}", m, float(np.asarray(v)[mask].mean()))
                 for m, v in per_q.items() if v]
    write_trec(out_dir / "runs" / f"test-{arm}.trec", top.to_run(col.query_ids.take(test), col.doc_ids.to_list()),
               tag=arm)
    atomic_write_text(out_dir / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                              for r in records))
    atomic_write_text(out_dir / "per_query.json", json.dumps({"questions": col.query_ids.take(test), **per_q}))
    info.update(stage_seconds=stages.seconds, stages_reused=stages.reused, wall_seconds=time.perf_counter() - t0)
    write_results(out_dir / "results.csv", rows)
    atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=str))
    return rows
