"""G3 speed in one run: faiss search, batched geo-verification and the geodesic accuracy, each against
a plain loop on the same data.

* ``search``: the geo database (``recwise.retrieval.geo.GeoDatabase``: faiss IndexFlatIP) against
  numpy (``q @ X.T`` + ``argpartition`` + sort) for ``--queries`` queries over a ``--gallery`` of
  unit vectors of width 3 x 384 (the task's [q, q->text, q->gps] vectors), top 20 and reverse top 15.
* ``verify``: the task's verification (one batched location-encoder call over every query's
  candidates, then one einsum) against a plain loop (per query: encode its candidates, then numpy
  cosines), GeoCLIP's pretrained encoder and untrained heads, ``--candidates`` per query.
* ``accuracy``: great-circle errors and accuracy at 1/25/200/750/2500 km for ``--pairs`` pairs:
  geopy's geodesic (one pair at a time, as G3's evaluation) against haversine's vectorised version.

Each timing is the median of ``--repeats`` alternating rounds; ratios are plain / ours.

    .venv/bin/python benchmarks/geo_speed.py
    .venv/bin/python benchmarks/geo_speed.py --gallery 32306 --queries 1000 --pairs 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_search(gallery: int, queries: int, repeats: int) -> dict[str, float]:
    from recwise.retrieval.geo import GeoDatabase

    rng = np.random.default_rng(0)
    x = rng.normal(size=(gallery, 1152)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(gallery, queries, replace=False)] + 0.01 * rng.normal(size=(queries, 1152)).astype(np.float32)
    db = GeoDatabase(x, np.zeros((gallery, 2)))

    def ours() -> tuple[np.ndarray, np.ndarray]:
        return db.search(q, 20).rows, db.reverse(q, 15).rows

    def plain() -> tuple[np.ndarray, np.ndarray]:
        s = q @ x.T
        top = np.argpartition(-s, 20, axis=1)[:, :20]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1), 1)
        low = np.argpartition(s, 15, axis=1)[:, :15]
        low = np.take_along_axis(low, np.argsort(np.take_along_axis(s, low, 1), axis=1), 1)
        return top, low

    a, b = ours(), plain()
    agree = float(np.mean(a[0] == b[0]))
    t_ours = _median_time(ours, repeats)
    t_plain = _median_time(plain, repeats)
    return {"gallery": gallery, "queries": queries, "faiss_s": t_ours, "numpy_s": t_plain,
            "ratio_numpy_over_faiss": t_plain / t_ours, "top20_agreement": agree}


def bench_verify(queries: int, candidates: int, repeats: int) -> dict[str, float]:
    import torch

    from recwise.models.geo.align import GeoAligner
    from recwise.models.geo.location import LocationEncoder

    torch.manual_seed(0)
    enc = LocationEncoder.pretrained()
    heads = GeoAligner(384, 384).eval()
    rng = np.random.default_rng(0)
    q = rng.normal(size=(queries, 384)).astype(np.float32)
    cand = np.column_stack([rng.uniform(-80, 80, queries * candidates),
                            rng.uniform(-180, 180, queries * candidates)]).reshape(queries, candidates, 2)

    def ours() -> np.ndarray:
        feats = enc.encode(cand.reshape(-1, 2)).reshape(queries, candidates, -1)
        _, best = heads.verify(torch.from_numpy(q), torch.from_numpy(feats))
        return best.numpy()

    with torch.no_grad():
        qg = heads.gps_space(torch.from_numpy(q)).numpy()
        w1, b1 = heads.location_head[0].weight.numpy().T, heads.location_head[0].bias.numpy()
        w2, b2 = heads.location_head[2].weight.numpy().T, heads.location_head[2].bias.numpy()

    def plain() -> np.ndarray:
        best = np.zeros(queries, dtype=np.int64)
        for i in range(queries):
            scores = []
            for c in range(candidates):
                f = enc.encode(cand[i, c][None])[0]
                h = np.maximum(f @ w1 + b1, 0) @ w2 + b2
                scores.append(float(qg[i] @ (h / np.linalg.norm(h))))
            best[i] = int(np.argmax(scores))
        return best

    agree = float(np.mean(ours() == plain()))
    t_ours = _median_time(ours, repeats)
    t_plain = _median_time(plain, max(1, repeats // 2))
    return {"queries": queries, "candidates": candidates, "batched_s": t_ours, "loop_s": t_plain,
            "ratio_loop_over_batched": t_plain / t_ours, "queries_per_s_batched": queries / t_ours,
            "same_choice": agree}


def bench_accuracy(pairs: int, repeats: int) -> dict[str, float]:
    from recwise.metrics.geo import accuracy_at, distances_km

    rng = np.random.default_rng(0)
    t = np.column_stack([rng.uniform(-89, 89, pairs), rng.uniform(-180, 180, pairs)])
    p = np.column_stack([np.clip(t[:, 0] + rng.normal(0, 5, pairs), -90, 90),
                         (t[:, 1] + rng.normal(0, 5, pairs) + 180) % 360 - 180])
    accuracy_at(distances_km(t[:10], p[:10], method="haversine"))  # warm-up (imports)
    t_hav = _median_time(lambda: accuracy_at(distances_km(t, p, method="haversine")), repeats)
    t0 = time.perf_counter()
    geo = accuracy_at(distances_km(t, p, method="geodesic"))
    t_geo = time.perf_counter() - t0
    hav = accuracy_at(distances_km(t, p, method="haversine"))
    diff = max(abs(geo[k] - hav[k]) for k in geo)
    return {"pairs": pairs, "geodesic_s": t_geo, "haversine_s": t_hav, "ratio_geodesic_over_haversine": t_geo / t_hav,
            "max_accuracy_difference": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gallery", type=int, default=32306)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--verify-queries", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=21)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out = {"search": bench_search(args.gallery, args.queries, args.repeats),
           "verify": bench_verify(args.verify_queries, args.candidates, args.repeats),
           "accuracy": bench_accuracy(args.pairs, args.repeats)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
