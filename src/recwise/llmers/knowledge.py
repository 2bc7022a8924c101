"""Knowledge enhancement, KAR style: the LLM writes a short profile per item and per user.

KAR (Xi et al., "Towards Open-World Recommendation with Knowledge Augmentation from Large
Language Models", RecSys 2024) asks an LLM for *factual knowledge* about each item and *reasoning
knowledge* about each user's preferences, encodes both texts and feeds the vectors to a
conventional recommender through a hybrid-expert adaptor; the texts are produced once, offline.

Here, for MovieLens-100K and a small local LLM:

* an item profile answers "describe this movie in one or two sentences" given its title, year and
  genres; a user profile answers "describe this viewer's taste" given their latest items before a
  cut (never the validation or test item) and most frequent genres;
* leak-free by default (``user_profile="window"``): a training window (``max_len`` targets of the
  sequential construction, counted from the end of the training history as
  :func:`recwise.data.sequence.sequence_examples` does) gets its own profile, built only from the
  user's items *before the window's first target*, so no profile describes an item that is still a
  target in or after its window; validation and test use the profile of the whole training history
  (every training item precedes them). Table rows ``0..n_users-1`` are those evaluation profiles,
  rows ``n_users + w`` the profile of training window ``w`` (:func:`train_profile_rows` maps
  training examples to their row). ``user_profile="history"`` is the earlier variant: one profile
  per user from the whole training history, also inside training windows, where it describes
  items that are still targets (a leak);
* a call budget: the first ``item_budget`` items (most popular first, or coldest first) and the
  first ``user_budget`` users (shortest training history first) get LLM profiles; the others get a
  profile templated from the metadata (counted as ``templated``);
* the encoded text is ``"<title>. <profile>"`` for items (the profile anchored to its item) and the
  profile for users; vectors come from the LLM layer's encoder (MiniLM by default).

Every prompt and text is written to ``knowledge.jsonl`` by the caller and kept in the LLM disk
cache: a second run makes zero LLM calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from recwise.data.sequence import Sequences
from recwise.errors import ConfigError
from recwise.llmers.text import ItemMeta, StepStats, encode_rows

__all__ = ["KnowledgeConfig", "KnowledgeResult", "build_knowledge", "item_prompt", "profile_windows",
           "train_profile_rows", "user_prompt"]


@dataclass(frozen=True)
class KnowledgeConfig:
    """Options of the KAR step (``--set kar.<name>=...``)."""

    item_budget: int = 200  # items profiled by the LLM; the rest templated
    user_budget: int = 100  # users profiled by the LLM; the rest templated
    item_order: Literal["popular", "cold"] = "popular"  # which items get the LLM first
    history: int = 10  # latest training items shown in a user prompt
    max_tokens: int = 48
    chunk: int = 32  # prompts per generate call (progress granularity)
    # window: one profile per training window from the items before it (leak-free); history: one
    # profile per user from the whole training history, shown in every training window (leaks targets)
    user_profile: Literal["window", "history"] = "window"
    # window: training targets per profile (and per training row); 0 = the task's max_len, i.e. the
    # sequential construction's windows. Smaller = profiles less stale at the end of a row.
    refresh: int = 0

    def __post_init__(self) -> None:
        for name in ("item_budget", "user_budget"):
            if getattr(self, name) < 0:
                raise ConfigError(f"option 'kar.{name}' must be >= 0; got {getattr(self, name)}")
        for name in ("history", "max_tokens", "chunk"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option 'kar.{name}' must be >= 1; got {getattr(self, name)}")
        if self.refresh < 0:
            raise ConfigError(f"option 'kar.refresh' must be >= 0 (0: the task's max_len); got {self.refresh}")


@dataclass
class KnowledgeResult:
    item_vectors: np.ndarray  # (n_items + 1, D), row 0 zeros
    user_vectors: np.ndarray  # (n_users, D), or (n_users + windows, D) for user_profile=window
    records: list[dict[str, Any]]
    stats: StepStats
    windows: int = 0  # training-window profiles after the n_users evaluation profiles


def _train_range(seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """Flat [start, stop) of each user's training items (all but the last two, users with >= 3)."""
    start, stop = seqs.offsets[:-1], seqs.offsets[1:]
    return start, np.where(stop - start >= 3, stop - 2, stop)


def profile_windows(seqs: Sequences, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(user, cut) per training window, in the order of
    :func:`recwise.data.sequence.sequence_examples`: window ``k`` of a user (``k = 0`` the latest)
    has targets at flat positions ``[max(stop - (k+1) max_len, start + 1), stop - k max_len)``; its
    profile may use the items at ``[start, cut)`` with ``cut`` = its first target's position."""
    start, stop = _train_range(seqs)
    n_targets = np.maximum(stop - start - 1, 0)
    n_win = -(-n_targets // max_len)
    user = np.repeat(np.arange(seqs.n_users), n_win)
    k = np.arange(int(n_win.sum())) - np.repeat(np.concatenate([[0], np.cumsum(n_win)[:-1]]), n_win)
    cut = np.maximum(stop[user] - (k + 1) * max_len, start[user] + 1)
    return user, cut


def refreshed_examples(seqs: Sequences, max_len: int, span: int, padding: str = "right") -> dict[str, Any]:
    """Sequence-construction training rows with ``span`` targets each (``span <= max_len``), in the
    order of :func:`profile_windows` ``(seqs, span)``: a row's inputs are the latest ``<= max_len``
    items before its last target, and only its own ``span`` targets carry a loss (``target_seq`` 0
    elsewhere), so every training target is used once per epoch, with ``max_len`` items of context,
    and the row's profile (items before its first target) is at most ``span`` targets old. With
    ``span == max_len`` these are :func:`recwise.data.sequence.sequence_examples`' rows."""
    import torch

    from recwise.data.sequence import windows

    if not 1 <= span <= max_len:
        raise ConfigError(f"option 'kar.refresh' must be in 1..max_len ({max_len}); got {span}")
    user, cut = profile_windows(seqs, span)
    start, stop = _train_range(seqs)
    n_targets = np.maximum(stop - start - 1, 0)
    n_rows = -(-n_targets // span)
    k = np.arange(len(user)) - np.repeat(np.concatenate([[0], np.cumsum(n_rows)[:-1]]), n_rows)
    tgt_end = stop[user] - k * span
    inputs, length = windows(seqs.items, start[user], tgt_end - 1, max_len, padding)  # type: ignore[arg-type]
    targets, _ = windows(seqs.items, start[user] + 1, tgt_end, max_len, padding)  # type: ignore[arg-type]
    flat, _ = windows(np.arange(1, len(seqs.items) + 1), start[user] + 1, tgt_end, max_len, padding)  # type: ignore[arg-type]
    targets = np.where(flat - 1 >= cut[:, None], targets, 0)  # only this row's targets
    return {"item_seq": torch.from_numpy(inputs), "item_len": torch.from_numpy(length),
            "target_seq": torch.from_numpy(targets), "user": torch.from_numpy(user)}


def train_profile_rows(seqs: Sequences, max_len: int, kind: str) -> np.ndarray:
    """For each training example of construction ``kind`` (``sequence``: one per window;
    ``prefix``: one per target, in :func:`recwise.data.sequence.prefix_examples`' order), the row of
    the ``user_profile=window`` user table holding its window's profile (``n_users + w``)."""
    user, _ = profile_windows(seqs, max_len)
    if kind == "sequence":
        return seqs.n_users + np.arange(len(user))
    if kind != "prefix":
        raise ConfigError(f"KAR's window profiles support 'sequence' and 'prefix' examples; got {kind!r}")
    start, stop = _train_range(seqs)
    n_ex = np.maximum(stop - start - 1, 0)
    ex_user = np.repeat(np.arange(seqs.n_users), n_ex)
    tpos = np.repeat(start + 1 - np.concatenate([[0], np.cumsum(n_ex)[:-1]]), n_ex) + np.arange(int(n_ex.sum()))
    first_win = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=seqs.n_users))[:-1]])
    k = (stop[ex_user] - 1 - tpos) // max_len  # window k counts back from the latest
    return seqs.n_users + first_win[ex_user] + k


def _movie(m: ItemMeta) -> str:
    return f"{m.title} ({m.year})" if m.year else m.title


def item_prompt(m: ItemMeta) -> list[dict[str, str]]:
    genres = ", ".join(m.genres) or "unknown genre"
    return [{"role": "user", "content": f"Describe the movie {_movie(m)} ({genres}) in one or two sentences: "
                                        "its story, its tone, and who would enjoy it."}]


def user_prompt(history: Sequence[ItemMeta], genres: Sequence[str]) -> list[dict[str, str]]:
    listing = "; ".join(_movie(m) for m in history)
    return [{"role": "user", "content": f"A viewer recently watched: {listing}. The genres they watch most: "
                                        f"{', '.join(genres)}. In one or two sentences, describe this viewer's "
                                        "taste in movies."}]


def item_template(m: ItemMeta) -> str:
    return m.text()


def user_template(history: Sequence[ItemMeta], genres: Sequence[str]) -> str:
    return f"Recently watched: {'; '.join(_movie(m) for m in history)}. Favourite genres: {', '.join(genres)}."


def clean(text: str, limit: int = 400) -> str:
    """First paragraph, whitespace collapsed, at most ``limit`` characters."""
    first = text.strip().split("\n\n")[0]
    return " ".join(first.split())[:limit]


def train_items(seqs: Sequences, u: int) -> np.ndarray:
    """User ``u``'s training items (leave-one-out: all but the last two)."""
    items = seqs.user_items(u)
    return items[:-2] if len(items) >= 3 else items


def top_genres(history: Sequence[ItemMeta], k: int = 3) -> list[str]:
    counts = Counter(g for m in history for g in m.genres)
    return [g for g, _ in counts.most_common(k)] or ["various"]


def _generate(generator: Any, prompts: list[Any], cfg: KnowledgeConfig, stats: StepStats, desc: str,
              progress: bool) -> list[str]:
    from tqdm.auto import tqdm

    from recwise.llm import GenerationParams

    params = GenerationParams(max_tokens=cfg.max_tokens)
    out: list[str] = []
    for start in tqdm(range(0, len(prompts), cfg.chunk), desc=desc, disable=not progress or len(prompts) <= cfg.chunk):
        chunk = prompts[start:start + cfg.chunk]
        before = generator.backend_calls
        out += generator.generate(chunk, params)
        calls = generator.backend_calls - before
        stats.prompts += len(chunk)
        stats.llm_calls += calls
        stats.cache_hits += len(chunk) - calls
    return out


def build_knowledge(seqs: Sequences, meta: Sequence[ItemMeta], generator: Any, encoder: Any,
                    cfg: KnowledgeConfig | None = None, *, max_len: int = 50, progress: bool = True) -> KnowledgeResult:
    """Item and user profiles -> vectors. ``meta[i]`` describes internal item id ``i`` (row 0 unused).

    ``generator`` is needed only when a budget is > 0 (``None`` otherwise: all profiles templated).
    ``max_len`` is the training windows' length (``user_profile="window"``; ``refresh`` targets per
    profile when set). The LLM writes the
    item profiles of ``item_budget`` items and every profile (evaluation and training windows) of
    the ``user_budget`` users with the shortest training histories; the rest are templated. Every
    prompt goes through the generator's disk cache.
    """
    cfg = cfg or KnowledgeConfig()
    stats = StepStats("kar").start()
    n_items, n_users = seqs.n_items, seqs.n_users
    if len(meta) != n_items + 1:
        raise ConfigError(f"item metadata has {len(meta)} rows; expected {n_items + 1} (padding included)")
    if generator is None and (cfg.item_budget or cfg.user_budget):
        raise ConfigError("options 'kar.item_budget'/'kar.user_budget' > 0 need an LLM generator")
    # --- items: the budget goes to the most popular (or coldest) items, by training count
    counts = np.zeros(n_items + 1, np.int64)
    for u in range(n_users):
        np.add.at(counts, train_items(seqs, u), 1)
    ids = np.arange(1, n_items + 1)
    order = ids[np.lexsort((ids, -counts[1:] if cfg.item_order == "popular" else counts[1:]))]
    llm_items = [int(i) for i in order[:cfg.item_budget]]
    item_text = [""] + [item_template(m) for m in meta[1:]]
    source = ["template"] * (n_items + 1)
    prompts: dict[int, Any] = {i: item_prompt(meta[i]) for i in llm_items}
    if llm_items:
        for i, text in zip(llm_items, _generate(generator, list(prompts.values()), cfg, stats, "kar items", progress)):
            item_text[i] = f"{meta[i].title}. {clean(text)}"
            source[i] = "llm"
    records: list[dict[str, Any]] = [
        {"kind": "item", "id": i, "title": meta[i].title, "source": source[i], "train_count": int(counts[i]),
         "prompt": prompts[i][0]["content"] if i in prompts else None, "text": item_text[i]}
        for i in range(1, n_items + 1)]
    # --- users: the budget goes to the shortest training histories
    hist = [[meta[int(i)] for i in train_items(seqs, u)] for u in range(n_users)]
    lengths = np.array([len(h) for h in hist])
    users = np.arange(n_users)
    llm_users = [int(u) for u in users[np.lexsort((users, lengths))][:cfg.user_budget]]
    # profile rows: the evaluation profiles (whole training history), then one per training window
    p_user = list(range(n_users))
    p_items = [train_items(seqs, u) for u in range(n_users)]
    p_kind = ["user"] * n_users
    if cfg.user_profile == "window":
        w_user, w_cut = profile_windows(seqs, cfg.refresh or max_len)
        start = seqs.offsets[:-1]
        p_user += w_user.tolist()
        p_items += [seqs.items[start[u]:c] for u, c in zip(w_user, w_cut)]
        p_kind += ["user-window"] * len(w_user)
    shown = [np.asarray(items[-cfg.history:]) for items in p_items]
    recent = [[meta[int(i)] for i in items] for items in shown]
    genres = [top_genres([meta[int(i)] for i in items]) for items in p_items]
    user_text = [user_template(recent[r], genres[r]) for r in range(len(p_user))]
    usource = ["template"] * len(p_user)
    rank = {u: i for i, u in enumerate(llm_users)}
    llm_rows = sorted((r for r in range(len(p_user)) if p_user[r] in rank), key=lambda r: (rank[p_user[r]], r))
    uprompts = {r: user_prompt(recent[r], genres[r]) for r in llm_rows}
    if llm_rows:
        for r, text in zip(llm_rows, _generate(generator, list(uprompts.values()), cfg, stats, "kar users", progress)):
            user_text[r] = clean(text) or user_template(recent[r], genres[r])
            usource[r] = "llm"
    records += [{"kind": p_kind[r], "id": p_user[r], "row": r, "source": usource[r],
                 "train_len": int(lengths[p_user[r]]), "profile_items": [int(i) for i in shown[r]],
                 "history_items": len(p_items[r]),
                 "prompt": uprompts[r][0]["content"] if r in uprompts else None, "text": user_text[r]}
                for r in range(len(p_user))]
    stats.templated = source.count("template") - 1 + usource.count("template")
    item_vectors = encode_rows(encoder, item_text, stats)
    user_vectors = encode_rows(encoder, [""] + user_text, stats)[1:]
    windows = len(p_user) - n_users
    stats.extra = {"llm_items": len(llm_items), "llm_users": len(llm_users), "llm_user_profiles": len(llm_rows),
                   "items": n_items, "users": n_users, "user_profile": cfg.user_profile, "window_profiles": windows}
    return KnowledgeResult(item_vectors, user_vectors, records, stats.stop(), windows)
