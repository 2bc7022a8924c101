"""The rag protocol on a tiny planted QA set with a scripted LLM: files, metrics, stages, resume, bad input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recwise.data.qa import QASet
from recwise.data.retrieval import Collection, TextColumn
from recwise.errors import ConfigError, DataError
from recwise.llm import Completion, Generator, LLMCache
from recwise.metrics.qa import answer_in_texts

CAPITALS = [("Peru", "Lima"), ("Chile", "Santiago"), ("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"),
            ("Norway", "Oslo"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Egypt", "Cairo"), ("Cuba", "Havana"),
            ("Nepal", "Kathmandu"), ("Ghana", "Accra")]


def tiny_qa(n_filler: int = 14) -> QASet:
    """One document per country (its capital), ``n_filler`` documents of noise; a question per country."""
    docs = [f"{c} is a country whose capital is {cap}." for c, cap in CAPITALS]
    docs += [f"Filler note {i} about rivers, hills and {CAPITALS[i % 12][0]} trade." for i in range(n_filler)]
    qs = [f"What is the capital of {c}?" for c, _ in CAPITALS]
    col = Collection("tiny", TextColumn.from_strings([f"d{i}" for i in range(len(docs))]),
                     TextColumn.from_strings([""] * len(docs)), TextColumn.from_strings(docs),
                     TextColumn.from_strings([f"q{i}" for i in range(12)]), TextColumn.from_strings(qs),
                     np.arange(12, dtype=np.int32), np.arange(12, dtype=np.int32), np.ones(12, np.int16),
                     np.ones(12, np.int16), {"key": "tiny"})
    return QASet(col, tuple((cap,) for _, cap in CAPITALS), np.arange(12) < 8, tuple("capital" for _ in range(12)))


@dataclass
class Scripted:
    """Rationales name the answer unless ``empty``; answers are the first capital named in the documents."""

    name: str = "scripted"
    fingerprint: str = "scripted-v1"
    empty: bool = False
    seen: list[Any] = field(default_factory=list)

    def complete(self, rows: Sequence[Any]) -> list[Completion]:
        out = []
        for row in rows:
            self.seen.append(row.prompt)
            msgs = row.prompt
            if "rationale" in msgs[0]["content"]:
                ans = msgs[2]["content"].removeprefix("Answer: ")
                text = "" if self.empty else f"The capital city is {ans}, where the government sits."
            else:
                doc1 = msgs[1]["content"].split("Doc 1: ")[1].split("\nDoc 2: ")[0].split("\n\nQuestion:")[0]
                text = "Answer: " + (doc1.split("capital is ")[1].rstrip(".") if "capital is" in doc1 else "unknown")
            out.append(Completion(text, completion_tokens=5))
        return out


def _gen(tmp_path: Path, **kw: Any) -> tuple[Generator, Scripted]:
    backend = Scripted(**kw)
    return Generator(backend, LLMCache(str(tmp_path / "cache.sqlite"))), backend


def test_retriever_arm_writes_predictions_and_scores_them(tmp_path: Path) -> None:
    from recwise.tasks.rag.protocol import run

    gen, backend = _gen(tmp_path)
    out = tmp_path / "cell"
    rows = run(tiny_qa(), "retriever", 0, {"retrieve": {"retriever": "bm25"}, "eval": {"depth": "8", "keep": "2"}},
               out_dir=out, dataset="tiny", generator=gen)
    got = {r.metric: r.value for r in rows if r.segment == "all"}
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 4 and len(backend.seen) == 4  # the 4 test questions, one batched call
    assert set(preds[0]) >= {"question", "answers", "retrieved", "reranked", "generated", "em", "f1"}
    assert len(preds[0]["reranked"]) == 2 and preds[0]["reranked"] == preds[0]["retrieved"][:2]
    # the scripted generator answers from Doc 1: EM is the share of questions whose top document is the gold one
    top_is_gold = np.mean([p["reranked"][0] == f"d{8 + i}" for i, p in enumerate(preds)])
    assert got["em"] == pytest.approx(top_is_gold) and got["support_recall@2"] >= got["em"]
    assert got["acc"] == got["em"]  # one-word answers: containment and exact match agree
    assert (out / "results.csv").read_text().count(",retriever,") >= 5
    assert (out / "runs" / "test-retriever.trec").exists()


def test_bad_arm_option_and_answerless_question(tmp_path: Path) -> None:
    from recwise.tasks.rag.protocol import check_options, run

    with pytest.raises(ConfigError, match="unknown arm 'radoi'"):
        run(tiny_qa(), "radoi", 0, {}, out_dir=tmp_path, dataset="tiny", generator=_gen(tmp_path)[0])
    with pytest.raises(ConfigError, match="radio.smapler"):
        check_options({"radio": {"smapler": "shift"}})
    with pytest.raises(ConfigError, match="radio.candidates"):
        check_options({"radio": {"candidates": "10"}})
    with pytest.raises(ConfigError, match="eval.keep"):
        check_options({"eval": {"keep": "30"}})
    with pytest.raises(ConfigError, match="llm.dtype"):
        check_options({"llm": {"dtype": "int8"}})
    qa = tiny_qa()
    with pytest.raises(DataError, match="has no answer"):
        QASet(qa.collection, (("",),) + qa.answers[1:], qa.is_train, qa.kinds)


@pytest.mark.slow
def test_radio_stages_resume_with_zero_llm_calls_and_count_the_short_list_fallback(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from recwise.tasks.rag.protocol import run

    opts = {"retrieve": {"retriever": "bm25"}, "eval": {"depth": "8", "keep": "2"},
            "radio": {"candidates": "19"}, "rerank": {"epochs": "1", "batch_size": "4", "max_length": "64"}}
    qa = tiny_qa(n_filler=4)  # 16 documents: fewer than the 19 candidates the shift sampler needs
    gen, backend = _gen(tmp_path)
    out = tmp_path / "radio"
    run(qa, "radio", 0, opts, out_dir=out, dataset="tiny", generator=gen)
    info = json.loads((out / "run.json").read_text())
    assert info["rationales"]["llm_calls"] == 8 and info["rationales"]["mention_gold"] == 8
    assert info["groups"]["groups"] == 8 and info["groups"]["fallback"] == 8
    groups = [json.loads(line) for line in (out / "groups.jsonl").read_text().splitlines()]
    assert all(len(g["negatives"]) == 6 and g["positive"] not in g["negatives"] for g in groups)
    # the label audit: how many positives and negatives hold a gold answer, counted on the groups written
    texts, ids = qa.collection.doc_texts(), list(qa.collection.doc_ids)
    gold = {qa.collection.query_texts[i]: qa.answers[i] for i in range(len(qa.answers))}
    has = [[answer_in_texts([texts[ids.index(d)]], gold[g["question"]]) for d in (g["positive"], *g["negatives"])]
           for g in groups]
    assert info["groups"]["positive_with_answer"] == sum(h[0] for h in has)
    assert info["groups"]["negatives_with_answer"] == sum(sum(h[1:]) for h in has)
    assert info["groups"]["negatives"] == 48 and 0 < sum(h[0] for h in has)
    assert info["groups"]["groups_against_answers"] == sum(not h[0] or any(h[1:]) for h in has)
    assert (out / "checkpoint" / "reranker").is_dir()
    first = (out / "predictions.jsonl").read_text()
    calls = gen.backend_calls
    gen2 = Generator(backend, LLMCache(str(tmp_path / "cache.sqlite")))
    run(qa, "radio", 0, opts, out_dir=out, dataset="tiny", generator=gen2, resume=True)
    info = json.loads((out / "run.json").read_text())
    assert gen2.backend_calls == 0 and calls == 12
    assert {"rationales", "finetune", "generate"} <= set(info["stages_reused"])
    assert (out / "predictions.jsonl").read_text() == first
    # an LLM that writes empty rationales: counted, the text falls back to question + answers
    gen3, _ = _gen(tmp_path / "empty", empty=True)
    (tmp_path / "empty").mkdir(exist_ok=True)
    run(qa, "radio-rationale-only", 0, opts, out_dir=tmp_path / "e", dataset="tiny", generator=gen3)
    assert json.loads((tmp_path / "e" / "run.json").read_text())["rationales"]["empty"] == 8


def test_llm_dtype_enters_the_stage_key_only_when_set() -> None:
    from recwise.tasks.rag.protocol import LLMConfig, configs

    plain = configs({})["llm"].key()
    assert "dtype" not in plain  # stage files written before the option existed keep their keys
    bf = configs({"llm": {"dtype": "bfloat16", "backend": "transformers"}})["llm"]
    assert bf.key() == {**plain, "backend": "transformers", "dtype": "bfloat16"}
    assert LLMConfig().key() == plain
