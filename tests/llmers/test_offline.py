"""Offline steps on the real MovieLens-100K: item text, KAR profiles (cached, inspectable), LLMRec
pseudo positives (parsed against the candidates, bounded retries, recorded fallback, budget)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from recwise.errors import ConfigError
from recwise.llmers import (
    KnowledgeConfig,
    PseudoConfig,
    build_knowledge,
    item_meta_rows,
    item_texts,
    item_tokens,
    pick_positives,
    read_item_meta,
)
from recwise.llmers.knowledge import train_items
from recwise.tasks.llmers import LLMERSRun, run

from .conftest import scripted_generator


@pytest.fixture(scope="module")
def meta(ml100k):  # noqa: ANN001, ANN201
    seqs, raw = ml100k
    return item_meta_rows(item_tokens("ml-100k", seqs, raw), read_item_meta("ml-100k", raw))


def test_item_text_is_title_year_genres(ml100k, meta) -> None:  # noqa: ANN001
    seqs, _ = ml100k
    texts = item_texts(meta)
    assert len(texts) == seqs.n_items + 1 and texts[0] == ""
    assert "Toy Story (1995). Genres: Animation, Children's, Comedy." in texts
    # internal ids follow the loader's remapping: the item most watched in training is Star Wars (raw id 50)
    counts = np.bincount(np.concatenate([train_items(seqs, u) for u in range(seqs.n_users)]),
                         minlength=seqs.n_items + 1)
    assert texts[int(counts.argmax())].startswith("Star Wars (1977)")


def test_profiles_are_cached_and_recorded(ml100k, meta, encoder, tmp_path) -> None:  # noqa: ANN001
    seqs, _ = ml100k
    cfg = KnowledgeConfig(item_budget=3, user_budget=2, max_tokens=8)
    gen = scripted_generator(lambda p: f"profile of: {p[:40]}", tmp_path / "c.sqlite")
    first = build_knowledge(seqs, meta, gen, encoder, cfg, progress=False)
    # 3 items; 2 users x (their whole-history profile + one per training window: 1 each, <= 50 targets)
    assert (first.stats.prompts, first.stats.llm_calls, first.stats.cache_hits) == (7, 7, 0)
    assert first.stats.templated == seqs.n_items - 3 + seqs.n_users + first.windows - 4
    llm = [r for r in first.records if r["source"] == "llm"]
    assert [r["kind"] for r in llm] == ["item"] * 3 + ["user"] * 2 + ["user-window"] * 2
    # the budget goes to the most popular items and the shortest training histories
    items = [r for r in first.records if r["kind"] == "item"]
    top = sorted(items, key=lambda r: -r["train_count"])[:3]
    assert {r["id"] for r in llm[:3]} == {r["id"] for r in top}
    users = [r for r in first.records if r["kind"] == "user"]
    assert max(r["train_len"] for r in llm[3:]) <= min(r["train_len"] for r in users if r["source"] == "template")
    assert all(r["prompt"] and r["text"] for r in llm)
    # a second run (new generator, same cache file) makes zero LLM calls and gives the same vectors
    gen2 = scripted_generator(lambda p: "never asked", tmp_path / "c.sqlite")
    second = build_knowledge(seqs, meta, gen2, encoder, cfg, progress=False)
    assert (second.stats.llm_calls, second.stats.cache_hits) == (0, 7)
    assert gen2.backend.rows == 0
    np.testing.assert_array_equal(first.item_vectors, second.item_vectors)
    np.testing.assert_array_equal(first.user_vectors, second.user_vectors)
    assert first.item_vectors.shape == (seqs.n_items + 1, encoder.dim) and not first.item_vectors[0].any()


def test_pseudo_answer_naming_no_candidate_falls_back_within_budget(ml100k, meta, tmp_path) -> None:  # noqa: ANN001
    seqs, _ = ml100k
    gen = scripted_generator(lambda p: "I would not watch any of them.", tmp_path / "c.sqlite")
    cfg = PseudoConfig(users=5, budget=7, max_attempts=3)
    res = pick_positives(seqs, meta, gen, cfg, progress=False)
    assert res.stats.prompts == 7 and gen.backend.rows <= 7  # 5 first prompts + 2 retries, then the budget ends
    assert res.pairs == [] and res.stats.fallbacks == 5  # skip: nothing added
    assert [r["attempts"] for r in res.records] == [2, 2, 1, 1, 1]
    assert all(r["fallback"] and r["item"] is None for r in res.records)
    res = pick_positives(seqs, meta, gen, PseudoConfig(users=5, budget=7, max_attempts=3, fallback="first"),
                         progress=False)
    assert [i for _, i in res.pairs] == [r["candidates"][0] for r in res.records]
    assert res.stats.llm_calls == 0 and res.stats.cache_hits == 7  # same prompts, all cached


def test_pseudo_answer_is_parsed_against_the_candidates(ml100k, meta, tmp_path) -> None:  # noqa: ANN001
    seqs, _ = ml100k

    def answer(prompt: str) -> str:  # the 3rd candidate by title on the first try; a bare number on retry
        if "Reply with only one number" in prompt:
            return "2"
        listing = re.findall(r"^(\d+)\. (.+)$", prompt, flags=re.M)
        return f"I pick {listing[2][1]}" if "Star Wars" not in prompt else "none"

    res = pick_positives(seqs, meta, scripted_generator(answer, tmp_path / "c.sqlite"),
                         PseudoConfig(users=20, budget=40), progress=False)
    assert res.stats.fallbacks == 0 and len(res.pairs) == 20
    for r in res.records:
        want = r["candidates"][1] if r["attempts"] == 2 else r["candidates"][2]
        assert r["item"] == want
        assert r["item"] not in set(train_items(seqs, r["user"]).tolist())  # candidates are unseen items
    lengths = [r["train_len"] for r in res.records]
    assert lengths == sorted(lengths)  # shortest histories first


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="llmrec.max_attempts"):
        PseudoConfig(max_attempts=0)
    with pytest.raises(ConfigError, match="kar.item_budget"):
        KnowledgeConfig(item_budget=-1)


def _popularity_ndcg(seqs) -> float:  # noqa: ANN001
    from recwise.data.sequence import eval_inputs
    from recwise.metrics.ranking import ranking_metrics, target_ranks

    counts = np.bincount(np.concatenate([train_items(seqs, u) for u in range(seqs.n_users)]),
                         minlength=seqs.n_items + 1)
    val = eval_inputs(seqs, "val", 50)
    scores = torch.log(torch.from_numpy(counts).float() + 1).expand(len(val["target"]), -1).clone()
    scores[:, 0] = -float("inf")
    return ranking_metrics(target_ranks(scores, val["target"]).numpy(), (10,))["ndcg@10"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["text-init", "alpharec", "kar", "kar-history", "llmrec"])
def test_each_method_trains_and_beats_popularity(ml100k, encoder, tmp_path, method) -> None:  # noqa: ANN001
    seqs, raw = ml100k
    gen = scripted_generator(lambda p: "1", tmp_path / "c.sqlite")  # LLMRec: always the first candidate
    opts = {"train": {"epochs": "2"}, "model": {"n_layers": "1"}, "kar": {"item_budget": "0", "user_budget": "0"},
            "llmrec": {"users": "30", "budget": "30"}}
    rows = run(LLMERSRun("ml-100k", method, 0, str(raw)), seqs, options=opts, out_dir=tmp_path / "run",
               progress=False, generator=gen, encoder=encoder)
    got = {(r.split, r.segment, r.metric): r.value for r in rows}
    pop = _popularity_ndcg(seqs)
    assert got[("val", "all", "ndcg@10")] > pop * 1.5, (got[("val", "all", "ndcg@10")], pop)
    expected = {("test", "pop=cold", "ndcg@10"), ("test", "hist=short", "hit@10"), ("test", "len=5-20", "ndcg@10")}
    assert expected <= set(got)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    hist = [h["loss"] for h in info["history"]]
    assert hist[-1] < hist[0]  # the loss falls
    # the validation the trainer selected on is the one of the final (best) weights: no stale
    # eval-time item/user tables during training (the fused Adam does not bump _version)
    best = info["history"][info["best_epoch"]]["val"]
    assert got[("val", "all", "ndcg@10")] == pytest.approx(best, abs=1e-9)
    if method == "llmrec":
        assert info["pseudo_rows"] == 30 and (tmp_path / "run" / "pseudo.jsonl").exists()
    if method == "kar":
        lines = (tmp_path / "run" / "knowledge.jsonl").read_text().splitlines()
        steps = json.loads((tmp_path / "run" / "run.json").read_text())["offline_steps"]
        windows = steps[0]["extra"]["window_profiles"]
        assert windows > seqs.n_users and len(lines) == seqs.n_items + seqs.n_users + windows
