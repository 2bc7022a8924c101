"""The geo database: top-k and reverse top-k agree with a plain numpy sort."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.errors import DataError
from recwise.retrieval.geo import GeoDatabase


def test_search_and_reverse_are_the_two_ends_of_the_inner_product_order() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    latlon = np.column_stack([rng.uniform(-90, 90, 200), rng.uniform(-180, 180, 200)])
    q = x[:5] + 0.01
    db = GeoDatabase(x, latlon)
    near, far = db.search(q, 7), db.reverse(q, 7)
    sims = q @ x.T
    np.testing.assert_array_equal(near.rows, np.argsort(-sims, axis=1)[:, :7])
    np.testing.assert_array_equal(far.rows, np.argsort(sims, axis=1)[:, :7])
    np.testing.assert_allclose(far.scores, np.sort(sims, axis=1)[:, :7], atol=1e-5)
    assert (near.rows[:, 0] == np.arange(5)).all()  # each query's own entry first
    np.testing.assert_array_equal(db.latlon[near.rows[0]], latlon[near.rows[0]])


def test_mismatched_coordinates_are_an_error() -> None:
    with pytest.raises(DataError, match="coordinates"):
        GeoDatabase(np.zeros((3, 4), np.float32), np.zeros((2, 2)))
