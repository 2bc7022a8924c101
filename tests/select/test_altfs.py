"""AltFS: prompt, parsing, bounded retries and recorded fallbacks, cache, and the surrogate's LLM weights.

The LLM transport is replaced by a scripted backend (the LLM layer's Backend interface: ``name``,
``fingerprint``, ``complete(rows)``) that reads the candidate list from the real prompt.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from recwise.data.schema import Field, FieldKind, Schema
from recwise.data.table import Table
from recwise.errors import ConfigError
from recwise.llm import Completion, Generator, LLMCache, Row
from recwise.select import get_selector
from recwise.select.altfs import AltFS, build_prompt, field_info, mi_order, parse_feature, prior_scores

from ._deep_helpers import FAST, planted


def candidates_in(prompt: object) -> list[str]:
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]  # type: ignore[index]
    return list(ast.literal_eval(re.search(r"Candidate features: (\[.*?\])", text).group(1)))


class Scripted:
    """Answers by ``answer(candidates, attempt_row)``; counts rows it was sent."""

    name = "scripted"

    def __init__(self, answer: Callable[[list[str], Row], str], fingerprint: str = "v1") -> None:
        self.answer = answer
        self.fingerprint = fingerprint
        self.rows: list[Row] = []

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        self.rows.extend(rows)
        return [Completion(self.answer(candidates_in(r.prompt), r)) for r in rows]


def prefers(order: list[str]) -> Callable[[list[str], Row], str]:
    return lambda cands, row: f"Let me think about it.\n**{next(f for f in order if f in cands)}**"


def small_table(n: int = 400) -> Table:
    rng = np.random.default_rng(0)
    fields = (Field("user_id", FieldKind.SPARSE, 30, "user identifier"),
              Field("item_id", FieldKind.SPARSE, 40, "movie identifier"),
              Field("age", FieldKind.SPARSE, 7, "user age bucket"),
              Field("age_group", FieldKind.SPARSE, 3, "coarse user age group"),
              Field("genre", FieldKind.SPARSE, 18, "movie genre"),
              Field("price", FieldKind.DENSE, 0, "item price, scaled"))
    cols = {f.name: rng.integers(0, max(f.vocab_size, 1), n) for f in fields if f.kind == FieldKind.SPARSE}
    cols["price"] = rng.random(n).astype(np.float32)
    cols["label"] = (rng.random(n) < 1 / (1 + np.exp(-(cols["genre"] % 3 - 1.0)))).astype(np.float32)
    return Table(Schema((*fields, Field("label", FieldKind.LABEL))), cols)


def altfs(gens: list[Generator], **options: Any) -> AltFS:
    return AltFS(options, generators=gens, train=FAST, seed=0)


# ---------------------------------------------------------------------------------------------- parsing


def test_parse_feature_last_line_longest_whole_word_then_anywhere() -> None:
    c = ["age", "age_group", "genre", "user_id"]
    assert parse_feature("blah\n\n  `age_group`.  \n", c) == ("age_group", "last_line")
    assert parse_feature("I pick AGE", c) == ("age", "last_line")  # whole word, any case
    assert parse_feature("first line\nThe answer: age_group and genre", c) == ("age_group", "last_line")
    # released substring matching would read 'age' inside 'average'; a whole-word match does not
    assert parse_feature("Genre matters.\nthe average is high", c) == ("genre", "anywhere")
    assert parse_feature("Nothing useful here.\nSorry.", c) is None
    assert parse_feature("", c) is None


def test_prompt_carries_every_part_of_the_released_prompt() -> None:
    table = small_table()
    info = field_info(table, ["user_id", "item_id", "age", "age_group", "genre", "price"])
    text = build_prompt(info, ["user_id", "item_id"], ["age", "genre"], n_samples=1234)
    for part in ("recommender systems and feature selection", "Sample num", "1234", "Feature num",
                 "movie identifier", "coarse user age group", "categorical id", "numeric", "Unique values",
                 "Features already selected: ['user_id', 'item_id']", "Candidate features: ['age', 'genre']",
                 "informative", "independent", "simple", "last line"):
        assert part in text, part
    row = next(line for line in text.splitlines() if line.startswith("age_group\t"))
    assert row.split("\t")[1:] == ["coarse user age group", "categorical id (int64)",
                                   str(int(table.columns["age_group"][0])), "3"]


# ---------------------------------------------------------------------------------------------- stage 1


def test_scripted_llm_ranking_starts_from_user_and_item_and_makes_one_call_per_pick() -> None:
    backend = Scripted(prefers(["genre", "price", "age_group", "age"]))
    sel = altfs([Generator(backend, None)]).fit(small_table())
    assert sel.llm_rankings_ == [["user_id", "item_id", "genre", "price", "age_group", "age"]]
    assert sel.report_["start_fields"] == ["user_id", "item_id"]
    assert len(backend.rows) == 3  # the last candidate needs no call
    assert sel.report_["fallbacks"] == {"scripted:v1": 0}
    assert [c["parsed_from"] for c in sel.calls_] == ["last_line"] * 3 + ["only_candidate"]
    assert backend.rows[0].params.temperature == 0.7 and backend.rows[0].params.max_tokens == 1000
    # one LLM: its weight is 1 and the score is 1 - rank/F
    assert sel.report_["surrogate"]["trained"] is False
    assert sel.ranking_ == sel.llm_rankings_[0]
    np.testing.assert_allclose(sel.scores_, prior_scores(sel.llm_rankings_, sel.fields_)[0])


def test_answer_naming_no_field_falls_back_after_bounded_retries() -> None:
    table = small_table()
    backend = Scripted(lambda cands, row: "I cannot decide; every feature looks fine to me.")
    sel = altfs([Generator(backend, None)], max_attempts=2).fit(table)
    picks = len(sel.fields_) - 2 - 1
    assert len(backend.rows) == 2 * picks  # bounded: max_attempts per pick, never a loop
    assert sel.report_["fallbacks"] == {"scripted:v1": picks}
    assert all(c["fallback"] and c["attempts"] == 2 for c in sel.calls_[:picks])
    retry = backend.rows[1]
    assert "Reply with one of the candidate features" in retry.prompt[-1]["content"]  # type: ignore[index]
    assert retry.params.seed != backend.rows[0].params.seed
    # fallback picks follow mutual information with the label on the training table
    expected = [f for f in mi_order(table, sel.fields_) if f not in ("user_id", "item_id")]
    assert sel.llm_rankings_[0][2:] == expected
    schema_order = altfs([Generator(Scripted(lambda c, r: "no idea"), None)], max_attempts=1,
                         fallback="schema").fit(table)
    assert schema_order.llm_rankings_[0] == ["user_id", "item_id", "age", "age_group", "genre", "price"]


def test_a_retry_that_parses_is_not_a_fallback() -> None:
    def answer(cands: list[str], row: Row) -> str:
        return "genre" if "Reply with one of" in row.prompt[-1]["content"] else "hmm"  # type: ignore[index]

    sel = altfs([Generator(Scripted(answer), None)]).fit(small_table())
    first = sel.calls_[0]
    assert first["chosen"] == "genre" and first["attempts"] == 2 and not first["fallback"]


def test_second_run_is_served_by_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "llm.sqlite"
    table = small_table()
    first_backend = Scripted(prefers(["age", "genre", "price", "age_group"]))
    first = altfs([Generator(first_backend, LLMCache(path))]).fit(table)
    assert len(first_backend.rows) == 3
    again = Scripted(prefers(["price", "age", "genre", "age_group"]))  # would answer differently
    second = altfs([Generator(again, LLMCache(path))]).fit(table)
    assert again.rows == [] and second.llm_rankings_ == first.llm_rankings_
    other_seed = AltFS({}, generators=[Generator(again, LLMCache(path))], train=FAST, seed=1).fit(table)
    assert len(again.rows) == 3 and other_seed.llm_rankings_[0][2] == "price"  # sampled: the seed is in the key


def test_start_fields_option_and_errors() -> None:
    table = small_table()
    sel = altfs([Generator(Scripted(prefers(["price", "genre", "age", "age_group", "item_id", "user_id"])), None)],
                start_fields=()).fit(table)
    assert sel.llm_rankings_[0][:2] == ["price", "genre"]
    with pytest.raises(ConfigError, match="zipcode"):
        altfs([Generator(Scripted(prefers(["age"])), None)], start_fields=("zipcode",)).fit(table)
    with pytest.raises(ConfigError, match="local:"):
        get_selector("altfs", {"llms": "gpt4"})
    with pytest.raises(ConfigError, match="max_attempts"):
        get_selector("altfs", {"max_attempts": 0})


# ---------------------------------------------------------------------------------------------- stage 2


def test_surrogate_learns_which_llm_the_data_supports_and_weights_are_read_from_it() -> None:
    p = planted(0)
    good = p.signal + list(p.copies) + p.noise
    gens = [Generator(Scripted(prefers(good), "good"), None), Generator(Scripted(prefers(good[::-1]), "bad"), None)]
    sel = altfs(gens, start_fields=()).fit(p.part("train"), p.part("val"))
    gate = sel.model_.gate
    np.testing.assert_allclose(sel.llm_weights_, gate.weights().detach().numpy(), rtol=1e-6)
    assert sel.llm_weights_.sum() == pytest.approx(1.0)
    assert sel.llm_weights_[0] > 0.8  # the ranking whose tail is noise wins
    np.testing.assert_allclose(sel.scores_, sel.llm_weights_ @ prior_scores(sel.llm_rankings_, sel.fields_))
    assert set(sel.ranking_[: len(p.signal)]) == set(p.signal)
    assert sel.report_["surrogate"]["trained"] and sel.report_["weights"]["scripted:good"] == sel.llm_weights_[0]


def test_surrogate_gate_masks_a_random_tail_of_each_ranking() -> None:
    from recwise.select.altfs import SurrogateGate

    prior = prior_scores([["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]], list("abcdefghij"))
    gate = SurrogateGate(prior, 2, seed=0)
    gate.eval()
    assert gate.max_drop == 2  # int(0.2 * 10)
    emb = torch.ones(3, 10, 2)
    seen = set()
    for _ in range(40):
        g = gate(emb, {})[0, :, 0]  # BatchNorm in eval mode with fresh statistics: x / sqrt(1 + eps)
        kept = (g > 0).numpy()
        assert kept[:8].all()  # the top of the ranking is never dropped
        seen.add(int((~kept).sum()))
    assert seen == {1, 2}
    tiny = SurrogateGate(prior_scores([["a", "b", "c"]], ["a", "b", "c"]), 2)
    assert tiny.max_drop == 1  # released randint(1, int(0.2 * 3)) = randint(1, 0) would fail


def test_raw_examples_replace_encoded_ids_in_the_prompt() -> None:
    backend = Scripted(prefers(["genre", "price", "age", "age_group"]))
    altfs_sel = AltFS({}, generators=[Generator(backend, None)], examples={"genre": ["Comedy|Drama", "Action"]},
                      train=FAST, seed=0).fit(small_table())
    prompt = backend.rows[0].prompt[-1]["content"]  # type: ignore[index]
    assert "genre\tmovie genre\tcategorical id (int64)\tComedy|Drama\t18" in prompt
    assert altfs_sel.llm_rankings_[0][2] == "genre"


def test_any_openai_compatible_server_through_the_http_backend(tmp_path: Path) -> None:
    """A minimal OpenAI-compatible chat endpoint (one thread, in process) ranks through ``http:<model>``."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, **body})
            pick = next(f for f in ["price", "genre", "age", "age_group"] if f in candidates_in(body["messages"]))
            out = json.dumps({"choices": [{"message": {"role": "assistant", "content": f"Because...\n{pick}"},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 10, "completion_tokens": 3}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        sel = get_selector("altfs",
                           {"llms": "http:tiny-chat", "base_url": url, "cache_path": str(tmp_path / "c.sqlite")},
                           train=FAST).fit(small_table())
    finally:
        server.shutdown()
        server.server_close()
    assert sel.llm_rankings_ == [["user_id", "item_id", "price", "genre", "age", "age_group"]]
    assert [s["path"] for s in seen] == ["/v1/chat/completions"] * 3
    assert seen[0]["model"] == "tiny-chat" and seen[0]["temperature"] == 0.7 and seen[0]["max_tokens"] == 1000
    assert sel.report_["llms"] == ["http:tiny-chat"] and sel.report_["fallbacks"] == {"http:tiny-chat": 0}
