"""The G3 protocol: align, retrieve, diversify, verify; one arm and one seed per run.

1. **Geo-alignment** (:mod:`recwise.models.geo.align`): heads trained on the gallery's
   (query embedding, text embedding, GPS) with the two CLIP losses. The query and text
   embeddings come from the LLM layer's encoder (MiniLM; cached); the location encoder is
   GeoCLIP's pretrained one on Mercator (or Equal Earth) input, trained with the heads as released
   (``align.location=trained``, a copy per run) or frozen (``align.location=frozen``, its features
   computed once per command). Verification uses the same (trained or frozen) encoder.
2. **Database** (:class:`recwise.retrieval.geo.GeoDatabase`): gallery vectors [q, q->text, q->gps]
   in faiss; each query gets its ``top_k`` most similar and ``max(rag_ks)`` least similar entries.
3. **Geo-diversification**: the zero-shot prompt and one RAG prompt per k in ``rag_ks`` (k most and
   k least similar entries' GPS), ``samples`` samples each. All (prompt, sample) rows go to the LLM
   layer in a few big ``Generator.sample`` calls (chunks of about 512 rows, through the LLM cache),
   so the batched decoder is used; ``parse_latlon`` reads each answer, and unparsable ones are
   re-asked at most ``attempts - 1`` times with ``ask_latlon``'s format reminder (one batched call
   per sample index and attempt). Answers that never parse are counted and dropped (``failed=drop``) or become
   (0, 0) as released (``failed=zero``).
4. **Geo-verification**: candidates = the first ``candidates`` samples of each prompt + the
   retrieval top-1; each is scored by cos(query -> GPS space, location head(encoder(candidate)));
   the best wins (one batched encoder call and one einsum for all queries).

Arms (``--arm``): ``g3``; ``nn`` (the top-1 entry's GPS); ``zero-shot`` (the zero-shot prompt's
first answer, (0, 0) when it never parses, as released); ``one-rag`` (only the RAG prompt with
the largest k, verified); ``no-verify`` (G3's candidates, the geometric medoid wins instead of
the verifier); ``no-reverse`` (RAG prompts without dissimilar references); ``equal-earth``
(GeoCLIP's projection instead of Mercator, alignment retrained).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import recwise
from recwise.config import config_from_dict, config_hash, config_to_dict
from recwise.data.geo import GeoSplit
from recwise.errors import ConfigError
from recwise.metrics.geo import THRESHOLDS_KM, accuracy_at, distances_km, segment_name
from recwise.results import ResultRow, atomic_write_text, write_results
from recwise.tasks.geo.prompts import chat, rag_prompt, zero_shot_prompt

__all__ = ["ARMS", "SCOPES", "GeoConfig", "Prepared", "arm_plan", "check_options", "counted", "make_generator",
           "prepare", "run"]

TASK = "geo"
SCOPES = ("geo", "align", "llm")
ARMS = ("g3", "nn", "zero-shot", "one-rag", "no-verify", "no-reverse", "equal-earth")


@dataclass(frozen=True)
class GeoConfig:
    """One cell's protocol options (``--set geo.KEY=VALUE``, or bare ``KEY=VALUE``).

    limit : evaluate the first ``limit`` test queries (0: all; ``--limit``).
    min_population, test_fraction, split_seed, query : the GeoNames set (:func:`recwise.data.geo.geonames_split`).
    encoder : the query/text encoder (the LLM layer's: ``minilm`` or a sentence-transformers folder).
    weights : GeoCLIP's ``location_encoder_weights.pth`` (default ``$RECWISE_HOME/geoclip/``).
    top_k : retrieved entries per query (released 20).
    rag_ks : references per RAG prompt (released 5, 10, 15).
    samples : samples per prompt (released 10); candidates : the first this many enter verification (released 5).
    temperature, max_tokens : sampling (released: 0.7 for LLaVA, 1.2 for the API; 200 tokens).
    attempts : ``ask_latlon`` attempts per answer (1: the released single parse).
    failed : ``drop`` unparsable answers, or ``zero`` (they become (0, 0), as released).
    distance : ``geodesic`` (geopy, as released) or ``haversine``.
    image_tower : the image datasets' query encoder, a local transformers CLIP folder (CLIP ViT-L/14 as released).
    database : the image datasets' gallery, the MP16-Pro CSV (``IMG_ID, LAT, LON, city, state, country``).
    database_images : the folder of the database's images (default ``images/`` beside ``database``).
    """

    limit: int = 0
    min_population: int = 15000
    test_fraction: float = 0.05
    split_seed: int = 0
    query: Literal["name", "alias", "any"] = "name"
    encoder: str = "minilm"
    weights: str | None = None
    top_k: int = 20
    rag_ks: tuple[int, ...] = (5, 10, 15)
    samples: int = 5
    candidates: int = 5
    temperature: float = 0.7
    max_tokens: int = 48
    attempts: int = 2
    failed: Literal["drop", "zero"] = "drop"
    distance: Literal["geodesic", "haversine"] = "geodesic"
    image_tower: str | None = None
    database: str | None = None
    database_images: str | None = None

    def __post_init__(self) -> None:
        for name, low in (("limit", 0), ("split_seed", 0), ("top_k", 1), ("samples", 1), ("candidates", 1),
                          ("max_tokens", 1), ("attempts", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"option 'geo.{name}' must be an int >= {low}; got {v!r}")
        if not self.rag_ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.rag_ks):
            raise ConfigError(f"option 'geo.rag_ks' must be a list of ints >= 1; got {self.rag_ks!r}")
        if self.candidates > self.samples:
            raise ConfigError(f"option 'geo.candidates' ({self.candidates}) cannot exceed 'geo.samples' "
                              f"({self.samples})")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"option 'geo.temperature' must be in [0, 2]; got {self.temperature!r}")
        if self.attempts > 10:
            raise ConfigError(f"option 'geo.attempts' must be at most 10; got {self.attempts}")


def check_options(options: dict[str, dict[str, str]]) -> tuple[GeoConfig, Any]:
    """Every scope checked (unknown keys, bad values) before any data is read."""
    from recwise.llm import GeneratorConfig
    from recwise.models.geo.align import AlignConfig

    cfg = config_from_dict(GeoConfig, options.get("geo", {}), where="geo")
    align = config_from_dict(AlignConfig, options.get("align", {}), where="align")
    config_from_dict(GeneratorConfig, options.get("llm", {}), where="llm")
    return cfg, align


@dataclass(frozen=True)
class ArmPlan:
    projection: str
    zero_shot: bool
    rag_ks: tuple[int, ...]
    reverse: bool
    select: Literal["verify", "medoid", "first", "nn"]


def arm_plan(arm: str, cfg: GeoConfig) -> ArmPlan:
    """What an arm asks and how it picks."""
    if arm not in ARMS:
        from recwise.registry import did_you_mean

        raise ConfigError(f"unknown arm '{arm}' for task 'geo'{did_you_mean(arm, ARMS)}")
    ks = tuple(sorted(set(cfg.rag_ks)))
    return {
        "g3": ArmPlan("mercator", True, ks, True, "verify"),
        "nn": ArmPlan("mercator", False, (), True, "nn"),
        "zero-shot": ArmPlan("mercator", True, (), True, "first"),
        "one-rag": ArmPlan("mercator", False, (max(ks),), True, "verify"),
        "no-verify": ArmPlan("mercator", True, ks, True, "medoid"),
        "no-reverse": ArmPlan("mercator", True, ks, False, "verify"),
        "equal-earth": ArmPlan("equal-earth", True, ks, True, "verify"),
    }[arm]


# ---------------------------------------------------------------------------------------------
# shared data: the split and its embeddings, computed once per command


@dataclass
class Prepared:
    """The split plus its frozen embeddings (query encoder on names and queries, text encoder on texts)."""

    split: GeoSplit
    gallery_query: np.ndarray  # (N, q) the gallery entries' observations (names) encoded
    gallery_text: np.ndarray  # (N, t) "{city}, {region}, {country}" encoded
    queries: np.ndarray  # (Q, q)
    weights: str | None = None
    location: dict[str, Any] = field(default_factory=dict)  # projection -> LocationEncoder
    gallery_location: dict[str, np.ndarray] = field(default_factory=dict)  # projection -> (N, 512)
    encode_seconds: float = 0.0
    # (seed, projection, alignment options) -> (trained heads, their location encoder, history): the
    # arms of one seed share one alignment (it is a function of these), so a bench trains it once
    alignments: dict[str, tuple[Any, Any, dict[str, list[float]]]] = field(default_factory=dict)

    def encoder_for(self, projection: str) -> Any:
        from recwise.models.geo.location import LocationEncoder

        if projection not in self.location:
            self.location[projection] = LocationEncoder.pretrained(self.weights, projection=projection)  # type: ignore[arg-type]
        return self.location[projection]

    def gallery_features(self, projection: str) -> np.ndarray:
        if projection not in self.gallery_location:
            self.gallery_location[projection] = self.encoder_for(projection).encode(self.split.gallery.latlon)
        return self.gallery_location[projection]


def prepare(split: GeoSplit, encoder: Any, *, query_encoder: Any = None, weights: str | None = None) -> Prepared:
    """Encode the gallery's texts with ``encoder`` (``encode(texts) -> (n, d)``), and the gallery's
    observations and the queries with ``query_encoder`` (default ``encoder``: names; an
    :class:`~recwise.models.geo.image.ImageTower` for image paths)."""
    t0 = time.perf_counter()
    observe = query_encoder if query_encoder is not None else encoder
    g = observe.encode(split.gallery.names)
    t = encoder.encode(split.gallery.texts)
    q = observe.encode(split.queries.texts)
    return Prepared(split, np.asarray(g, np.float32), np.asarray(t, np.float32), np.asarray(q, np.float32),
                    weights=weights, encode_seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# LLM calls, counted


def counted(gen: Any) -> Any:
    """The same generator (same cache) with a counting backend (:func:`recwise.llm.counted`)."""
    from recwise.llm import counted as llm_counted

    return llm_counted(gen)


def make_generator(options: dict[str, Any]) -> Any:
    """The generator of ``options['llm']`` (model, backend, base_url, ...; default local SmolLM2)."""
    from recwise.llm import GeneratorConfig, load_generator

    return load_generator(config_from_dict(GeneratorConfig, options.get("llm", {}), where="llm"))


# rows (prompt x sample) per generator call: big enough for batched decoding (the local llama.cpp
# backend keeps up to 64 rows in flight per context), small enough that an interrupted run keeps
# what it generated (the cache is written after each call)
CHUNK_ROWS = 512


def _diversify(gen: Any, prompts: list[Any], cfg: GeoConfig, seed: int,
               progress: bool) -> tuple[list[list[tuple[float, float] | None]], dict[str, int]]:
    """``samples`` answers per prompt, parsed by ``parse_latlon``; unparsable ones re-asked at most
    ``attempts - 1`` times with the format reminder of ``ask_latlon``.

    All (prompt, sample) rows go to the LLM layer in a few big calls (``Generator.sample`` over
    chunks of about :data:`CHUNK_ROWS` rows; sample ``j`` of a prompt is seeded by ``(seed, j)``), so
    the batched decoder sees many rows at once; the retries of one attempt are one call per sample
    index. Every call goes through the cache, so a re-run makes no model call.
    """
    from dataclasses import replace

    from recwise.llm import LATLON_REMINDER, GenerationParams, parse_latlon, with_reminder

    samples = 1 if cfg.temperature == 0 else cfg.samples  # greedy: every sample is the same text
    base = GenerationParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seed, n=samples)
    per_call = max(1, CHUNK_ROWS // samples)
    texts: list[list[str]] = []
    chunks = range(0, len(prompts), per_call)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="diversify", unit="call", leave=False)
    for start in chunks:
        texts += gen.sample(prompts[start:start + per_call], base)
    def pair(text: str) -> tuple[float, float] | None:
        v = parse_latlon(text)
        return (float(v[0]), float(v[1])) if v is not None else None

    out = [[pair(texts[i][j % samples]) for j in range(cfg.samples)] for i in range(len(prompts))]
    counts = {"answers": len(prompts) * cfg.samples, "parsed_first": 0, "parsed_retry": 0, "failed": 0,
              "rows": len(prompts) * samples}  # rows asked of the LLM layer (from the cache or the model)
    counts["parsed_first"] = sum(a is not None for row in out for a in row)
    for attempt in range(1, cfg.attempts):
        for j in range(cfg.samples):
            todo = [i for i in range(len(prompts)) if out[i][j] is None]
            if not todo:
                continue
            retry = replace(base, temperature=max(cfg.temperature, 0.7), seed=seed * 1000 + 100 * attempt + j, n=1)
            again = gen.generate([with_reminder(prompts[i], LATLON_REMINDER) for i in todo], retry)
            counts["rows"] += len(todo)
            for i, text in zip(todo, again):
                out[i][j] = pair(text)
                counts["parsed_retry"] += out[i][j] is not None
    counts["failed"] = counts["answers"] - counts["parsed_first"] - counts["parsed_retry"]
    return out, counts


def _medoid(points: np.ndarray) -> int:
    """Index of the point with the least summed great-circle distance to the others."""
    lat, lon = np.deg2rad(points[:, 0])[:, None], np.deg2rad(points[:, 1])[:, None]
    a = np.sin((lat - lat.T) / 2) ** 2 + np.cos(lat) * np.cos(lat.T) * np.sin((lon - lon.T) / 2) ** 2
    return int(np.argmin(np.arcsin(np.sqrt(np.clip(a, 0, 1))).sum(axis=1)))


def _align(prepared: Prepared, projection: str, align_cfg: Any, seed: int,
           progress: bool) -> tuple[Any, Any, dict[str, list[float]]]:
    """Train G3's heads (and, with ``align.location=trained``, a copy of the location encoder)."""
    import torch

    from recwise.models.geo.align import GeoAligner, train_alignment

    # load the encoder (and, frozen, its gallery features) before seeding: loading draws from torch's
    # RNG the first time only, so seeding first would give the heads another init in the second cell
    # of a bench than in a run of that seed alone
    trained = align_cfg.location == "trained"
    if trained:
        import copy

        from recwise.models.geo.location import project

        location_encoder = copy.deepcopy(prepared.encoder_for(projection))  # the shared one stays as loaded
        loc_input = project(prepared.split.gallery.latlon, projection)
    else:
        location_encoder = prepared.encoder_for(projection)
        loc_input = prepared.gallery_features(projection)
    torch.manual_seed(seed)
    heads = GeoAligner(prepared.gallery_query.shape[1], prepared.gallery_text.shape[1],
                       location_encoder=location_encoder if trained else None)
    history = train_alignment(heads, prepared.gallery_query, prepared.gallery_text, loc_input, align_cfg,
                              seed=seed, progress=progress)
    location_encoder.eval()
    return heads, location_encoder, history


# ---------------------------------------------------------------------------------------------
# one run


def run(prepared: Prepared, cfg: GeoConfig, align_cfg: Any, *, arm: str, seed: int, options: dict[str, Any],
        out_dir: Path | None = None, progress: bool = False, generator: Any = None,
        data_key: str | None = None) -> list[ResultRow]:
    """Run one arm; return its rows and, with ``out_dir``, write ``results.csv``, ``predictions.csv``
    and ``run.json``. ``generator`` may be passed in (tests); else it is built from ``options['llm']``."""
    import torch

    from recwise.retrieval.geo import GeoDatabase

    plan = arm_plan(arm, cfg)
    t_start = time.perf_counter()
    split = prepared.split
    queries = split.queries.head(cfg.limit or None)
    n_q = len(queries)
    q_emb = prepared.queries[:n_q]

    # 1. alignment (the location encoder trained with the heads, as released, or frozen); arms of
    # the same seed and projection reuse it within a command
    akey = json.dumps([seed, plan.projection, config_to_dict(align_cfg)], sort_keys=True)
    align_reused = akey in prepared.alignments
    if align_reused:
        heads, location_encoder, history = prepared.alignments[akey]
    else:
        heads, location_encoder, history = _align(prepared, plan.projection, align_cfg, seed, progress)
        prepared.alignments[akey] = (heads, location_encoder, history)
    align_seconds = float(sum(history["seconds"]))

    # 2. database and retrieval
    t_ret = time.perf_counter()
    with torch.no_grad():
        db_vecs = heads.database_embedding(torch.from_numpy(prepared.gallery_query)).numpy()
        qv = heads.database_embedding(torch.from_numpy(q_emb)).numpy()
    db = GeoDatabase(db_vecs, split.gallery.latlon)
    index_seconds = time.perf_counter() - t_ret
    t_search = time.perf_counter()
    near = db.search(qv, max(cfg.top_k, 1))
    far_k = max(plan.rag_ks, default=0)
    far = db.reverse(qv, far_k) if far_k and plan.reverse else None
    search_seconds = time.perf_counter() - t_search
    top1 = db.latlon[near.rows[:, 0]]

    # 3. diversification
    kinds: list[str] = (["zs"] if plan.zero_shot else []) + [f"rag{k}" for k in plan.rag_ks]
    from recwise.llm import Usage

    usage = Usage()
    counts = {"answers": 0, "parsed_first": 0, "parsed_retry": 0, "failed": 0, "rows": 0}
    answers: dict[str, list[list[tuple[float, float] | None]]] = {}
    t_llm = time.perf_counter()
    if kinds:
        gen = counted(generator if generator is not None else make_generator(options))
        usage = gen.backend.usage
        prompts: list[Any] = []
        for kind in kinds:
            for i in range(n_q):
                text = queries.texts[i] if queries.images is None else None
                if kind == "zs":
                    p = zero_shot_prompt(text)
                else:
                    k = int(kind[3:])
                    p = rag_prompt(text, db.latlon[near.rows[i, :k]],
                                   db.latlon[far.rows[i, :k]] if far is not None else None)
                prompts.append(chat(p, queries.images[i] if queries.images is not None else None))
        flat, counts = _diversify(gen, prompts, cfg, seed, progress)
        for j, kind in enumerate(kinds):
            answers[kind] = flat[j * n_q:(j + 1) * n_q]
    llm_seconds = time.perf_counter() - t_llm

    # 4. selection (verification, medoid, first answer or the NN)
    t_ver = time.perf_counter()
    zero = (0.0, 0.0)
    cand_lists: list[list[tuple[float, float]]] = []
    for i in range(n_q):
        cands: list[tuple[float, float]] = []
        for kind in kinds:
            for a in answers[kind][i][:cfg.candidates]:
                if a is not None:
                    cands.append(a)
                elif cfg.failed == "zero":
                    cands.append(zero)
        cand_lists.append(cands + [(float(top1[i, 0]), float(top1[i, 1]))])
    pred = np.zeros((n_q, 2))
    if plan.select == "nn":
        pred = top1.copy()
        cand_lists = [[c[-1]] for c in cand_lists]
    elif plan.select == "first":
        for i in range(n_q):
            first = answers["zs"][i][0]
            pred[i] = first if first is not None else zero
        cand_lists = [[c[0]] if c else [zero] for c in cand_lists]
    elif plan.select == "medoid":
        for i, c in enumerate(cand_lists):
            pts = np.asarray(c)
            pred[i] = pts[_medoid(pts)]
    else:
        width = max(len(c) for c in cand_lists)
        cand = np.zeros((n_q, width, 2))
        valid = np.zeros((n_q, width), dtype=bool)
        for i, c in enumerate(cand_lists):
            cand[i, :len(c)] = c
            valid[i, :len(c)] = True
        feats = location_encoder.encode(cand.reshape(-1, 2)).reshape(n_q, width, -1)
        with torch.no_grad():
            _, best = heads.verify(torch.from_numpy(q_emb), torch.from_numpy(feats), torch.from_numpy(valid))
        pred = cand[np.arange(n_q), best.numpy()]
    verify_seconds = time.perf_counter() - t_ver

    # 5. metrics
    dist = distances_km(queries.latlon, pred, method=cfg.distance)
    values: dict[tuple[str, str], float] = {}
    for seg, acc in accuracy_at(dist, THRESHOLDS_KM).items():
        values[(seg, "accuracy")] = acc
    answers_n = max(counts["answers"], 1)
    summary = {
        "median_km": float(np.median(dist)), "mean_km": float(np.mean(dist)), "queries": float(n_q),
        "candidates_mean": float(np.mean([len(c) for c in cand_lists])),
        "llm_answers": float(counts["answers"]), "llm_calls": float(usage.calls), "llm_tokens": float(usage.tokens),
        "llm_cache_hits": float(counts["rows"] - usage.calls),
        "parse_failed": float(counts["failed"]), "parse_failure_rate": counts["failed"] / answers_n,
        "parsed_after_retry": float(counts["parsed_retry"]),
        "align_seconds": align_seconds, "align_reused": float(align_reused), "llm_seconds": llm_seconds,
        "queries_per_second": n_q / max(search_seconds + verify_seconds, 1e-9),
        "wall_seconds": time.perf_counter() - t_start,
    }
    for name, v in summary.items():
        values[("all", name)] = v
    label = split.label
    rows = [ResultRow(TASK, label, arm, seed, "test", seg, metric, float(v)) for (seg, metric), v in values.items()]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_results(out_dir / "results.csv", rows)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["query_id", "query", "true_lat", "true_lon", "pred_lat", "pred_lon", "candidates", "error_km"])
        for i in range(n_q):
            w.writerow([queries.ids[i], queries.texts[i], f"{queries.latlon[i, 0]:.6f}", f"{queries.latlon[i, 1]:.6f}",
                        f"{pred[i, 0]:.6f}", f"{pred[i, 1]:.6f}", len(cand_lists[i]), f"{dist[i]:.3f}"])
        atomic_write_text(out_dir / "predictions.csv", buf.getvalue())
        info = {"task": TASK, "dataset": label, "arm": arm, "seed": seed, "geo_config": config_to_dict(cfg),
                "align_config": config_to_dict(align_cfg), "options": options, "data_key": data_key,
                "config_hash": config_hash(cfg, {"options": options, "arm": arm, "dataset": label}),
                "version": recwise.__version__, "align_loss": history["loss"], "align_reused": align_reused,
                "parse_counts": counts,
                "timings": {"encode_shared": prepared.encode_seconds, "align": align_seconds, "index": index_seconds,
                            "search": search_seconds, "llm": llm_seconds, "verify": verify_seconds},
                "metrics": {f"{s}/{m}": v for (s, m), v in values.items()}}
        atomic_write_text(out_dir / "run.json", json.dumps(info, indent=1, default=str))
    return rows


def segments() -> list[str]:
    return [segment_name(k) for k in THRESHOLDS_KM]
