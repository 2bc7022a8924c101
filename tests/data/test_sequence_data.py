"""Sequence building, k-core filtering, truncation, padding, example counts and the split."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.data.sequence import (
    build_sequences,
    eval_inputs,
    kcore_filter,
    prefix_examples,
    sequence_examples,
    windows,
)
from recwise.errors import ConfigError, DataError


def test_kcore_is_iterative() -> None:
    # item 9 has 1 interaction; removing it drops user 2 below 2 items, which then drops item 8
    user = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    item = np.array([1, 2, 1, 2, 8, 9, 8, 1])
    keep = kcore_filter(user, item, user_interval=(2, np.inf), item_interval=(2, np.inf))
    assert keep.tolist() == [True, True, True, True, False, False, False, False]


def test_kcore_upper_bound_is_exclusive() -> None:
    user = np.array([0, 0, 0, 1, 1])
    item = np.array([1, 2, 3, 1, 2])
    keep = kcore_filter(user, item, user_interval=(1, 3))
    assert keep.tolist() == [False, False, False, True, True]


def test_build_sorts_by_time_stably_and_remaps() -> None:
    user = np.array(["b", "a", "a", "a", "b"])
    item = np.array([30, 10, 20, 30, 10])
    time = np.array([5.0, 3.0, 1.0, 1.0, 1.0])
    s = build_sequences(user, item, time)
    assert s.n_users == 2 and s.n_items == 3
    assert s.user_items(0).tolist() == [2, 3, 1]  # user a: 20 (t1), 30 (t1, later in file), 10 (t3)
    assert s.user_items(1).tolist() == [1, 3]
    assert s.item_tokens[1:].tolist() == [10, 20, 30]


def test_build_rejects_empty_after_filter() -> None:
    with pytest.raises(DataError, match="removed every interaction"):
        build_sequences(np.array([0, 1]), np.array([1, 2]), np.array([0.0, 1.0]), user_interval=(5, np.inf))


def test_truncation_keeps_latest_and_padding_side() -> None:
    items = np.arange(1, 11)
    seq, n = windows(items, np.array([0, 0]), np.array([10, 3]), 4, "right")
    assert seq.tolist() == [[7, 8, 9, 10], [1, 2, 3, 0]] and n.tolist() == [4, 3]
    seq, n = windows(items, np.array([0, 0]), np.array([10, 3]), 4, "left")
    assert seq.tolist() == [[7, 8, 9, 10], [0, 1, 2, 3]]
    with pytest.raises(ConfigError):
        windows(items, np.array([0]), np.array([3]), 4, "middle")  # type: ignore[arg-type]


def test_prefix_count_and_no_test_leak(ml100k_seq) -> None:  # noqa: ANN001
    s = ml100k_seq
    assert (s.lengths >= 3).all()
    ex = prefix_examples(s, 50)
    assert len(ex["target"]) == len(s) - 3 * s.n_users == 97_171  # RecBole's count
    test = eval_inputs(s, "test", 50)
    val = eval_inputs(s, "val", 50)
    # no training example uses the validation or test interaction, as input or as target
    users = ex["user"].numpy()
    last_train = s.offsets[1:] - 3  # flat index of each user's last training item
    pos_of_target = np.repeat(np.arange(s.n_users), np.bincount(users, minlength=s.n_users))
    assert (pos_of_target == users).all()
    for u in (0, 17, 500):
        own = ex["target"].numpy()[users == u]
        assert own.tolist() == s.items[s.offsets[u] + 1 : last_train[u] + 1].tolist()
        assert (ex["item_seq"].numpy()[users == u][-1][:ex["item_len"][users == u][-1]]).tolist() == \
            s.items[max(s.offsets[u], last_train[u] - 50) : last_train[u]].tolist()
    assert (test["target"].numpy() == s.items[s.offsets[1:] - 1]).all()
    assert (val["target"].numpy() == s.items[s.offsets[1:] - 2]).all()
    # test input ends with the validation item
    t_seq, t_len = test["item_seq"].numpy(), test["item_len"].numpy()
    assert (t_seq[np.arange(len(t_len)), t_len - 1] == val["target"].numpy()).all()


def test_sequence_examples_cover_each_training_target_once(ml100k_seq) -> None:  # noqa: ANN001
    s = ml100k_seq
    ex = sequence_examples(s, 50)
    tgt, inp = ex["target_seq"].numpy(), ex["item_seq"].numpy()
    assert int((tgt > 0).sum()) == len(s) - 3 * s.n_users
    # targets are the inputs shifted by one within a window
    full = ex["item_len"].numpy() == 50
    assert (inp[full][:, 1:] == tgt[full][:, :-1]).all()
    # per user, the multiset of targets equals the prefix targets
    pre = prefix_examples(s, 50)
    for u in (3, 400):
        a = np.sort(tgt[ex["user"].numpy() == u].ravel())
        b = np.sort(pre["target"].numpy()[pre["user"].numpy() == u])
        assert a[a > 0].tolist() == b.tolist()


def test_short_users_only_train() -> None:
    s = build_sequences(np.array([0, 0, 1, 1, 1]), np.array([1, 2, 1, 2, 3]), np.arange(5.0))
    assert eval_inputs(s, "test", 5)["user"].tolist() == [1]
    ex = prefix_examples(s, 5)
    assert ex["user"].tolist() == [0]  # user 0 (2 items) trains on 1 -> 2; user 1 has no training target
