"""Retrieval speed in one run: fine-tuning examples/s against plain sentence-transformers, bm25s against
rank-bm25, and encode + faiss search time for a whole collection.

* ``finetune``: the same (query, positive, BM25-mined negative) triples of the collection, trained
  for one epoch by ``recwise.retrieval.finetune`` (what the retrieval task calls) and by a plain
  sentence-transformers script (``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss``,
  the library's defaults, the same batch size, sequence length and sampler), each on a fresh copy
  of MiniLM, alternating, ``--repeats`` times. Reported: examples/s (median) and the ratio ours/plain.
* ``bm25``: index and query time of bm25s (``recwise.retrieval.BM25Retriever``) and rank-bm25's
  ``BM25Okapi`` over the same tokens (bm25s's tokenizer, English stop words) and all queries, top 100.
* ``dense``: MiniLM encoding of the corpus and the queries (no cache: a fresh encoder) and exact
  faiss search (IndexFlatIP) of all queries, top 100.
* ``foldcost``: where a fine-tuning fold's time goes, per ``max_seq_length`` in ``--seqs``: the
  corpus's token lengths, re-encoding the whole corpus with a fresh MiniLM, and training
  ``--triples`` triples (recwise's ``finetune``, one epoch); then the projected seconds of one fold
  (training the fold's triples + re-encoding) for every pair (``pairs_per_query=0``) and for one
  pair per query (``pairs_per_query=1``). With ``--precisions fp32,bf16`` each step runs at both
  precisions (``train.precision``: bfloat16 autocast for training and the re-encoding), with the
  mean cosine between the two encodings of the corpus.

    .venv/bin/python benchmarks/retrieval_speed.py --data-dir ../shared/data/retrieval/cranfield
    .venv/bin/python benchmarks/retrieval_speed.py --data-dir DIR --dataset cisi --triples 256 --repeats 3
    .venv/bin/python benchmarks/retrieval_speed.py --data-dir DIR --parts foldcost --threads 1 --triples 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def _triples(col, n: int) -> list[tuple[str, str, str]]:  # noqa: ANN001
    from recwise.retrieval import BM25Retriever, mine

    texts = col.doc_texts()
    judged = col.judged_queries()
    rel = col.relevant()
    ranking = BM25Retriever().index(texts).search(col.query_texts.take(judged), 100)
    pools = mine(ranking, judged, rel, (10, 100))
    rng = np.random.default_rng(0)
    out = []
    for q in judged.tolist():
        for d in sorted(rel[q]):
            out.append((col.query_texts[q], texts[d], texts[int(rng.choice(pools[q]))]))
    return out[:n]


def bench_finetune(triples: list, repeats: int, batch: int, seq: int) -> dict:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from recwise.retrieval import FinetuneConfig, finetune, local_sentence_transformer, training_dataset

    def run_ours() -> float:
        model = local_sentence_transformer("minilm")
        t = time.perf_counter()
        finetune(model, triples, FinetuneConfig(epochs=1, batch_size=batch, max_seq_length=seq), seed=0)
        return len(triples) / (time.perf_counter() - t)

    def run_plain() -> float:
        model = local_sentence_transformer("minilm")
        model.max_seq_length = seq
        t = time.perf_counter()
        args = SentenceTransformerTrainingArguments(
            output_dir="/tmp/recwise-bench-st", num_train_epochs=1, per_device_train_batch_size=batch,
            learning_rate=2e-5, warmup_ratio=0.1, seed=0, batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no", report_to="none", logging_strategy="no", disable_tqdm=True, use_cpu=True)
        SentenceTransformerTrainer(model=model, args=args, train_dataset=training_dataset(triples),
                                   loss=MultipleNegativesRankingLoss(model)).train()
        return len(triples) / (time.perf_counter() - t)

    run_plain()  # warm-up (first-call costs of torch and the trainer), not measured
    ours, plain = [], []
    for i in range(repeats):  # alternate which side goes first
        if i % 2 == 0:
            ours.append(run_ours())
            plain.append(run_plain())
        else:
            plain.append(run_plain())
            ours.append(run_ours())
    o, p = statistics.median(ours), statistics.median(plain)
    return {"triples": len(triples), "recwise_examples_per_s": o, "plain_st_examples_per_s": p, "ratio": o / p,
            "recwise_all": ours, "plain_all": plain}


def bench_bm25(col) -> dict:  # noqa: ANN001
    import bm25s
    from rank_bm25 import BM25Okapi

    from recwise.retrieval import BM25Retriever

    texts, queries = col.doc_texts(), col.query_texts.to_list()
    t = time.perf_counter()
    ours = BM25Retriever().index(texts)
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    ours.search(queries, 100)
    query_s = time.perf_counter() - t
    # rank-bm25 on the same tokens
    corpus_tok = bm25s.tokenize(texts, stopwords="english", return_ids=False, show_progress=False)
    query_tok = bm25s.tokenize(queries, stopwords="english", return_ids=False, show_progress=False)
    t = time.perf_counter()
    peer = BM25Okapi(corpus_tok)
    peer_index_s = time.perf_counter() - t
    t = time.perf_counter()
    for q in query_tok:
        np.argsort(-peer.get_scores(q))[:100]
    peer_query_s = time.perf_counter() - t
    return {"docs": len(texts), "queries": len(queries), "bm25s_index_s": index_s, "bm25s_query_s": query_s,
            "rank_bm25_index_s": peer_index_s, "rank_bm25_query_s": peer_query_s,
            "query_speedup": peer_query_s / query_s}


def bench_dense(col) -> dict:  # noqa: ANN001
    from recwise.retrieval import DenseRetriever, SentenceEncoder, local_sentence_transformer

    texts, queries = col.doc_texts(), col.query_texts.to_list()
    dr = DenseRetriever(SentenceEncoder(local_sentence_transformer("minilm")))
    t = time.perf_counter()
    dr.index(texts)
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    qv = dr.encoder.encode(queries)
    query_encode_s = time.perf_counter() - t
    t = time.perf_counter()
    dr.faiss_index.search(qv, 100)
    search_s = time.perf_counter() - t
    return {"docs": len(texts), "queries": len(queries), "corpus_encode_s": encode_s,
            "query_encode_s": query_encode_s, "faiss_search_s": search_s}


def bench_foldcost(col, seqs: list[int], n_triples: int, k: int = 5,  # noqa: ANN001
                   precisions: tuple[str, ...] = ("fp32",)) -> dict:
    from recwise.retrieval import FinetuneConfig, SentenceEncoder, finetune, local_sentence_transformer

    texts = col.doc_texts()
    judged = col.judged_queries()
    rel = col.relevant()
    model = local_sentence_transformer("minilm")
    lens = np.array([len(ids) for ids in model.tokenizer(texts)["input_ids"]])
    train_queries = len(judged) * (k - 1) / k
    all_pairs = sum(len(rel[q]) for q in judged.tolist()) * (k - 1) / k
    out: dict = {"doc_tokens": {"mean": float(lens.mean()), "median": float(np.median(lens)),
                                **{f"share_over_{s}": float((lens > s).mean()) for s in seqs}},
                 "train_triples_per_fold": {"all_pairs": all_pairs, "one_per_query": train_queries}, "seqs": {}}
    triples = _triples(col, n_triples)
    for seq in seqs:
        vecs = {}
        for prec in precisions:
            model = local_sentence_transformer("minilm")
            model.max_seq_length = seq
            t = time.perf_counter()
            vecs[prec] = SentenceEncoder(model, batch_size=64, precision=prec).encode(texts)  # type: ignore[arg-type]
            encode_s = time.perf_counter() - t
            model = local_sentence_transformer("minilm")
            t = time.perf_counter()
            finetune(model, triples, FinetuneConfig(max_seq_length=seq, precision=prec), seed=0)  # type: ignore[arg-type]
            rate = len(triples) / (time.perf_counter() - t)
            row = {"corpus_encode_s": encode_s, "train_triples_per_s": rate,
                   "fold_s_all_pairs": all_pairs / rate + encode_s,
                   "fold_s_one_per_query": train_queries / rate + encode_s}
            if prec != precisions[0]:
                first = vecs[precisions[0]]
                row["mean_cosine_to_" + precisions[0]] = float(np.mean(np.sum(vecs[prec] * first, axis=1)))
            out["seqs"][f"{seq}-{prec}"] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cranfield")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--parts", default="bm25,dense,finetune")
    ap.add_argument("--triples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seqs", default="256,128,64", help="foldcost: max_seq_length values")
    ap.add_argument("--precisions", default="fp32", help="foldcost: fp32 and/or bf16 (train.precision)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from recwise.data.retrieval import load_collection

    col = load_collection(args.dataset, args.data_dir)
    out: dict = {"dataset": args.dataset, "threads": args.threads}
    parts = args.parts.split(",")
    if "bm25" in parts:
        out["bm25"] = r = bench_bm25(col)
        print(f"bm25 ({r['docs']} docs, {r['queries']} queries, top 100): bm25s index {r['bm25s_index_s']:.3f} s, "
              f"query {r['bm25s_query_s']:.3f} s; rank-bm25 index {r['rank_bm25_index_s']:.3f} s, "
              f"query {r['rank_bm25_query_s']:.3f} s; query speed-up {r['query_speedup']:.1f}x", flush=True)
    if "dense" in parts:
        out["dense"] = r = bench_dense(col)
        print(f"dense MiniLM: corpus encode {r['corpus_encode_s']:.1f} s ({r['docs']} docs), queries "
              f"{r['query_encode_s']:.2f} s, faiss flat search {r['faiss_search_s'] * 1000:.1f} ms", flush=True)
    if "finetune" in parts:
        out["finetune"] = r = bench_finetune(_triples(col, args.triples), args.repeats, args.batch, args.seq)
        print(f"fine-tune ({r['triples']} triples, batch {args.batch}, seq {args.seq}): recwise "
              f"{r['recwise_examples_per_s']:.1f} ex/s, plain sentence-transformers {r['plain_st_examples_per_s']:.1f} "
              f"ex/s, ratio {r['ratio']:.3f}", flush=True)
    if "foldcost" in parts:
        out["foldcost"] = r = bench_foldcost(col, [int(x) for x in args.seqs.split(",")], args.triples,
                                             precisions=tuple(args.precisions.split(",")))
        d = r["doc_tokens"]
        print(f"corpus tokens: mean {d['mean']:.0f}, median {d['median']:.0f}; "
              + ", ".join(f"over {k.removeprefix('share_over_')}: {v:.2f}"
                          for k, v in d.items() if k.startswith("share")))
        t = r["train_triples_per_fold"]
        print(f"training triples per fold (k=5): every pair {t['all_pairs']:.0f}, "
              f"one per query {t['one_per_query']:.0f}")
        for key, v in r["seqs"].items():
            seq, prec = key.split("-")
            cos = next((f"; mean cosine to {k.removeprefix('mean_cosine_to_')} {c:.6f}" for k, c in v.items()
                        if k.startswith("mean_cosine")), "")
            print(f"seq {seq} {prec}: corpus re-encode {v['corpus_encode_s']:.1f} s, training "
                  f"{v['train_triples_per_s']:.2f} triples/s; one fold {v['fold_s_all_pairs']:.0f} s (every pair), "
                  f"{v['fold_s_one_per_query']:.0f} s (one pair per query){cos}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
