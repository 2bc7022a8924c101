"""Reranker speed: training and inference pairs/s of recwise's cross-encoder against plain sentence-transformers.

* ``train``: the same geofacts groups (one positive + 6 negatives from the dense retriever's top 20,
  the shift ranks) trained for one epoch by ``recwise.retrieval.rerank.CrossEncoderReranker.fit``
  (``CrossEncoderTrainer`` + the group softmax loss) and by a plain sentence-transformers script:
  ``CrossEncoder`` + ``CrossEncoderTrainer`` + the library's ``BinaryCrossEntropyLoss`` on the same
  pairs flattened (label 1 for the positive, 0 for the negatives; batches of 7 x the group batch),
  so both score the same pairs per step; each on a fresh MiniLM start, alternating, ``--repeats``
  times; median pairs/s (load + train) and the ratio ours/plain.
* ``predict``: scoring every (question, candidate) pair of the test questions' top 20 through
  ``CrossEncoderReranker.rerank`` and through ``CrossEncoder.predict`` on the same pairs.

    .venv/bin/python benchmarks/rag_speed.py --groups 64 --questions 50 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=64)
    ap.add_argument("--questions", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    args = ap.parse_args()

    from recwise.data.geofacts import geofacts
    from recwise.retrieval import DenseConfig, DenseRetriever, load_dense_encoder
    from recwise.retrieval.rag import shift_group
    from recwise.retrieval.rerank import CrossEncoderReranker, Group, RerankerConfig

    qa = geofacts()
    col = qa.collection
    texts = col.doc_texts()
    dense = DenseRetriever(load_dense_encoder(DenseConfig())).index(texts)
    train = qa.rows("train")[: args.groups]
    cand = dense.search(col.query_texts.take(train), 20)
    groups = []
    for q, rows in zip(train.tolist(), cand.rows.tolist()):
        g = shift_group(rows)
        assert g is not None
        groups.append(Group(col.query_texts[q], texts[g.positive], tuple(texts[r] for r in g.negatives)))
    members = len(groups) * 7
    cfg = RerankerConfig(epochs=1, batch_size=args.batch_size, max_length=args.max_length)

    def ours() -> float:
        t = time.perf_counter()
        CrossEncoderReranker(cfg).fit(groups, seed=0)
        return members / (time.perf_counter() - t)

    def plain() -> float:
        from datasets import Dataset
        from sentence_transformers.cross_encoder import (
            CrossEncoder,
            CrossEncoderTrainer,
            CrossEncoderTrainingArguments,
            losses,
        )

        from recwise.retrieval.rerank import _model_folder

        t = time.perf_counter()
        model = CrossEncoder(str(_model_folder("minilm")), num_labels=1, max_length=args.max_length, device="cpu")
        with tempfile.TemporaryDirectory() as tmp:
            targs = CrossEncoderTrainingArguments(output_dir=tmp, num_train_epochs=1,
                                                  per_device_train_batch_size=args.batch_size * 7, learning_rate=6e-5,
                                                  save_strategy="no", report_to="none", logging_strategy="no",
                                                  disable_tqdm=True, use_cpu=True, seed=0)
            flat = {"query": [g.query for g in groups for _ in range(7)],
                    "doc": [d for g in groups for d in (g.positive, *g.negatives)],
                    "label": [float(j == 0) for _ in groups for j in range(7)]}
            CrossEncoderTrainer(model=model, args=targs, train_dataset=Dataset.from_dict(flat),
                                loss=losses.BinaryCrossEntropyLoss(model)).train()
        return members / (time.perf_counter() - t)

    res: dict[str, list[float]] = {"ours": [], "plain": []}
    for i in range(args.repeats):  # alternate which goes first (the first run pays the warm-up)
        for name in (("ours", "plain") if i % 2 == 0 else ("plain", "ours")):
            res[name].append(ours() if name == "ours" else plain())
    out = {"train_pairs_per_s": {k: statistics.median(v) for k, v in res.items()},
           "train_ratio": statistics.median(res["ours"]) / statistics.median(res["plain"])}

    rr = CrossEncoderReranker(cfg)
    test = qa.rows("test")[: args.questions]
    qs = col.query_texts.take(test)
    tc = dense.search(qs, 20)
    pairs = [(q, texts[r]) for q, rows in zip(qs, tc.rows.tolist()) for r in rows]
    t = time.perf_counter()
    rr.rerank(qs, tc, texts, 5)
    ours_p = len(pairs) / (time.perf_counter() - t)
    t = time.perf_counter()
    rr.model.predict([list(p) for p in pairs], batch_size=cfg.predict_batch_size, show_progress_bar=False)
    plain_p = len(pairs) / (time.perf_counter() - t)
    out["predict_pairs_per_s"] = {"ours": ours_p, "plain": plain_p}
    out["predict_ratio"] = ours_p / plain_p
    out["setup"] = {"groups": len(groups), "pairs_scored": len(pairs), "repeats": args.repeats,
                    "batch_size": args.batch_size, "max_length": args.max_length}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
