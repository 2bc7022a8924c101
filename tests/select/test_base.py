"""The selector contract: registry, options, ranking helper, top_k and input errors."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.data.synthetic import planted_ctr
from recwise.errors import ConfigError, DataError
from recwise.select import SELECTORS, get_selector, list_selectors, rank_fields


def test_registry_has_the_core_methods() -> None:
    assert {"lasso", "gbdt", "rf", "xgboost", "lightgbm", "permutation", "permutation_deep", "chi2",
            "mi"} <= set(list_selectors())
    for _, cls in SELECTORS.items():
        assert cls.family in ("shallow", "filter", "permutation", "gate", "sensitivity", "llm")


def test_unknown_method_and_option() -> None:
    with pytest.raises(ConfigError, match="unknown selection method 'lasso2'; did you mean 'lasso'"):
        get_selector("lasso2")
    with pytest.raises(ConfigError, match="unknown option 'method.alpah'.*did you mean 'alpha'"):
        get_selector("lasso", {"alpah": 1})
    with pytest.raises(ConfigError, match="must be one of"):
        get_selector("permutation", {"on": "test"})


def test_rank_fields_is_stable_and_puts_nan_last() -> None:
    fields = ["a", "b", "c", "d"]
    assert rank_fields(fields, np.array([1.0, 2.0, 1.0, np.nan])) == ["b", "a", "c", "d"]
    assert rank_fields(fields, np.zeros(4)) == fields


def test_top_k_bounds_and_unfitted() -> None:
    p = planted_ctr(2000, seed=1)
    sel = get_selector("chi2")
    with pytest.raises(ConfigError, match="not fitted"):
        sel.top_k(1)
    sel.fit(p.part("train"))
    n = len(sel.fields_)
    assert sel.top_k(n) == sel.ranking_
    for bad in (0, n + 1, -1):
        with pytest.raises(ConfigError, match=f"k={bad} is out of range: the table has F={n} fields"):
            sel.top_k(bad)


def test_bad_tables() -> None:
    p = planted_ctr(2000, seed=1)
    train = p.part("train")
    with pytest.raises(DataError, match="expects a recwise Table"):
        get_selector("mi").fit(np.zeros((3, 3)))
    with pytest.raises(DataError, match="differ from train fields"):
        get_selector("mi").fit(train, p.part("val").select(["s0", "s1"]))
    with pytest.raises(DataError, match="is empty"):
        get_selector("mi").fit(train.take(np.array([], dtype=np.int64)))
    with pytest.raises(ConfigError, match="needs a validation table"):
        get_selector("permutation_deep").fit(train)
