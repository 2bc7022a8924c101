"""KAR's user profiles do not leak: a training row's profile shows no item that is a training target
in or after its window (the default, ``user_profile=window``); the whole-history variant does."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.data.sequence import make_examples
from recwise.llmers import KnowledgeConfig, build_knowledge, item_meta_rows, item_tokens, read_item_meta
from recwise.llmers.knowledge import profile_windows, refreshed_examples, train_items, train_profile_rows

from .conftest import scripted_generator

MAX_LEN = 50


@pytest.fixture(scope="module")
def meta(ml100k):  # noqa: ANN001, ANN201
    seqs, raw = ml100k
    return item_meta_rows(item_tokens("ml-100k", seqs, raw), read_item_meta("ml-100k", raw))


def _leaks(seqs, res, kind: str, rows: np.ndarray, train=None) -> int:  # noqa: ANN001
    """Training examples whose profile shows one of their own or a later training target."""
    profile = {r["row"]: r for r in res.records if r["kind"] in ("user", "user-window")}
    train = make_examples(seqs, kind, MAX_LEN, "right") if train is None else train
    users = train["user"].numpy()
    targets = train["target_seq"].numpy() if kind == "sequence" else train["target"].numpy()[:, None]
    leaks = 0
    for e in range(len(users)):
        u = int(users[e])
        tr = train_items(seqs, u).tolist()
        first = min(tr.index(int(t)) for t in targets[e] if t > 0)  # no repeats in ML-100K
        later = set(tr[first:])  # this row's targets and every later training target
        p = profile[int(rows[e])]
        assert p["id"] == u
        shown = set(p["profile_items"])
        if shown & later:
            leaks += 1
    return leaks


@pytest.mark.parametrize("kind", ["sequence", "prefix"])
def test_window_profiles_show_no_current_or_later_training_target(ml100k, meta, encoder, kind: str) -> None:  # noqa: ANN001
    seqs, _ = ml100k
    res = build_knowledge(seqs, meta, None, encoder, KnowledgeConfig(item_budget=0, user_budget=0),
                          max_len=MAX_LEN, progress=False)
    rows = train_profile_rows(seqs, MAX_LEN, kind)
    assert res.user_vectors.shape[0] == seqs.n_users + res.windows and rows.max() < res.user_vectors.shape[0]
    assert rows.min() >= seqs.n_users  # training rows never read the whole-history profile
    assert _leaks(seqs, res, kind, rows) == 0


def test_whole_history_profiles_leak_and_are_kept_as_an_option(ml100k, meta, encoder) -> None:  # noqa: ANN001
    """The check above fails on the earlier variant: there, a training row reads its user's
    whole-history profile, which shows the user's latest training targets."""
    seqs, _ = ml100k
    res = build_knowledge(seqs, meta, None, encoder,
                          KnowledgeConfig(item_budget=0, user_budget=0, user_profile="history"), progress=False)
    assert res.windows == 0 and res.user_vectors.shape[0] == seqs.n_users
    rows = make_examples(seqs, "sequence", MAX_LEN, "right")["user"].numpy()
    assert _leaks(seqs, res, "sequence", rows) > seqs.n_users * 0.9  # nearly every user's latest window leaks


def test_window_profile_is_built_from_the_items_before_the_window(ml100k, meta, encoder) -> None:  # noqa: ANN001
    seqs, _ = ml100k
    res = build_knowledge(seqs, meta, None, encoder, KnowledgeConfig(item_budget=0, user_budget=0, history=10),
                          max_len=MAX_LEN, progress=False)
    w_user, w_cut = profile_windows(seqs, MAX_LEN)
    start = seqs.offsets[:-1]
    by_row = {r["row"]: r for r in res.records if r["kind"] == "user-window"}
    long_user = int(np.argmax(np.diff(seqs.offsets)))  # several windows
    mine = [w for w in range(len(w_user)) if w_user[w] == long_user]
    assert len(mine) > 3
    for w in mine:
        r = by_row[seqs.n_users + w]
        before = seqs.items[start[long_user]:w_cut[w]].tolist()
        assert r["profile_items"] == before[-10:] and r["history_items"] == len(before)
        assert meta[before[-1]].title in r["text"]
    # evaluation profile (row = user id): the whole training history, never the validation/test item
    ev = next(r for r in res.records if r["kind"] == "user" and r["id"] == long_user)
    assert ev["profile_items"] == train_items(seqs, long_user).tolist()[-10:]
    assert not set(ev["profile_items"]) & set(seqs.user_items(long_user)[-2:].tolist())


def test_window_profiles_stay_within_the_user_budget_and_cached(ml100k, meta, encoder, tmp_path) -> None:  # noqa: ANN001
    seqs, _ = ml100k
    cfg = KnowledgeConfig(item_budget=0, user_budget=3, max_tokens=8)
    gen = scripted_generator(lambda p: f"taste: {p[-60:]}", tmp_path / "c.sqlite")
    res = build_knowledge(seqs, meta, gen, encoder, cfg, max_len=MAX_LEN, progress=False)
    llm = [r for r in res.records if r["source"] == "llm"]
    users = {r["id"] for r in llm}
    w_user, _ = profile_windows(seqs, MAX_LEN)
    expected = sum(1 + int((w_user == u).sum()) for u in users)  # each budgeted user: history + its windows
    assert len(users) == 3 and res.stats.prompts == expected == len(llm) and gen.backend.rows == expected
    again = build_knowledge(seqs, meta, scripted_generator(lambda p: "never", tmp_path / "c.sqlite"), encoder, cfg,
                            max_len=MAX_LEN, progress=False)
    assert (again.stats.llm_calls, again.stats.cache_hits) == (0, expected)
    np.testing.assert_array_equal(res.user_vectors, again.user_vectors)


def test_refreshed_rows_use_every_target_once_with_fresher_profiles(ml100k, meta, encoder) -> None:  # noqa: ANN001
    seqs, _ = ml100k
    same = refreshed_examples(seqs, MAX_LEN, MAX_LEN)
    plain = make_examples(seqs, "sequence", MAX_LEN, "right")
    assert all(np.array_equal(same[k].numpy(), plain[k].numpy()) for k in plain)  # span = max_len: the usual rows
    rows10 = refreshed_examples(seqs, MAX_LEN, 10)
    t = rows10["target_seq"].numpy()
    assert (t > 0).sum(1).max() == 10 and len(t) > 3 * len(plain["user"])
    for u in (0, 5, int(np.argmax(np.diff(seqs.offsets)))):  # every training target exactly once
        got = np.sort(t[rows10["user"].numpy() == u][t[rows10["user"].numpy() == u] > 0])
        np.testing.assert_array_equal(got, np.sort(train_items(seqs, u)[1:]))
    res = build_knowledge(seqs, meta, None, encoder, KnowledgeConfig(item_budget=0, user_budget=0, refresh=10),
                          max_len=MAX_LEN, progress=False)
    rows = train_profile_rows(seqs, 10, "sequence")
    assert res.windows == len(rows) == len(t)
    assert _leaks(seqs, res, "sequence", rows, rows10) == 0
    stale = [r["history_items"] for r in res.records if r["kind"] == "user-window"]
    assert len(stale) == len(t)
