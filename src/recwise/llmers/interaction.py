"""Interaction enhancement, LLMRec style: the LLM picks likely positives for sparse users.

LLMRec (Wei et al., WSDM 2024) gives an LLM a user's history and a candidate list drawn from a base
recommender and asks which candidate the user would like (and which not); the chosen items become
extra (pseudo) training interactions of a graph recommender. Here, for a sequential recommender:

* users: at most ``users`` users are asked, those with the fewest training interactions first;
* candidates: ``n_candidates`` unseen items ranked by co-occurrence with the user's latest
  ``history`` training items (cosine-normalised counts over users' training sets), filled by
  popularity; no validation or test item is ever looked at;
* one prompt per user, the candidates numbered; the answer is parsed against the list
  (:func:`recwise.llm.parse_choice`: title or number); an answer naming no candidate is retried
  with a format reminder at temperature 0.7 (at most ``max_attempts`` prompts per user), then the
  recorded fallback applies: ``skip`` (no pseudo item) or ``first`` (the top co-occurrence candidate);
* the budget counts prompts, retries included, so a run asks exactly as many prompts with or
  without a warm cache (cache hits are counted separately);
* only positives are used (the recommender trains with CE over all items, so LLMRec's sampled
  negative has no role); the pseudo items enter training with a weight (``data.pseudo_weight``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from recwise.data.sequence import Sequences
from recwise.errors import ConfigError
from recwise.llmers.knowledge import _movie, train_items
from recwise.llmers.text import ItemMeta, StepStats

__all__ = ["PseudoConfig", "PseudoResult", "candidates_for", "cooccurrence_candidates", "pick_positives",
           "pseudo_prompt"]


@dataclass(frozen=True)
class PseudoConfig:
    """Options of the LLMRec step (``--set llmrec.<name>=...``)."""

    users: int = 100  # users asked, shortest training history first
    budget: int = 150  # prompts, retries included (first prompts beyond it are not sent)
    n_candidates: int = 10
    history: int = 10  # latest training items shown and used for candidates
    max_attempts: int = 2  # prompts per user at most
    fallback: Literal["skip", "first"] = "skip"
    max_tokens: int = 24

    def __post_init__(self) -> None:
        for name in ("users", "budget"):
            if getattr(self, name) < 0:
                raise ConfigError(f"option 'llmrec.{name}' must be >= 0; got {getattr(self, name)}")
        for name in ("n_candidates", "history", "max_attempts", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option 'llmrec.{name}' must be >= 1; got {getattr(self, name)}")
        if self.max_attempts > 10:
            raise ConfigError(f"option 'llmrec.max_attempts' must be <= 10; got {self.max_attempts}")


@dataclass
class PseudoResult:
    pairs: list[tuple[int, int]]  # (user, item) pseudo positives
    records: list[dict[str, Any]]
    stats: StepStats


def cooccurrence_candidates(seqs: Sequences, n_candidates: int, history: int) -> np.ndarray:
    """(n_users, n_candidates) unseen item ids per user, by co-occurrence with recent training items."""
    import scipy.sparse as sp

    n_items, n_users = seqs.n_items, seqs.n_users
    rows, cols = [], []
    for u in range(n_users):
        it = np.unique(train_items(seqs, u))
        rows.append(np.full(len(it), u))
        cols.append(it)
    r, c = np.concatenate(rows), np.concatenate(cols)
    X = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_users, n_items + 1))
    pop = np.asarray(X.sum(0)).ravel()
    C = (X.T @ X).toarray()
    norm = np.sqrt(np.maximum(pop, 1))
    C = C / norm[:, None] / norm[None, :]
    np.fill_diagonal(C, 0.0)
    out = np.zeros((n_users, n_candidates), np.int64)
    for u in range(n_users):
        tr = train_items(seqs, u)
        score = C[tr[-history:]].sum(0) + 1e-6 * pop / max(pop.max(), 1)  # ties broken by popularity
        score[0] = -np.inf
        score[tr] = -np.inf
        out[u] = np.argsort(-score, kind="stable")[:n_candidates]
    return out


def candidates_for(seqs: Sequences, cfg: PseudoConfig) -> np.ndarray:
    return cooccurrence_candidates(seqs, cfg.n_candidates, cfg.history)


def pseudo_prompt(history: Sequence[ItemMeta], cands: Sequence[ItemMeta]) -> list[dict[str, str]]:
    watched = "\n".join(f"- {_movie(m)}" for m in history)
    listing = "\n".join(f"{k}. {_movie(m)}" for k, m in enumerate(cands, 1))
    return [{"role": "user", "content": f"A viewer watched these movies, most recent last:\n{watched}\n\n"
                                        "Which one of these movies will the viewer most likely enjoy next?\n"
                                        f"{listing}\n\n"
                                        "Answer with the number and the title of one movie."}]


def _reminder(prompt: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    last = prompt[-1]
    content = f"{last['content']}\n\nReply with only one number from 1 to {n}."
    return [*prompt[:-1], {"role": "user", "content": content}]


def pick_positives(seqs: Sequences, meta: Sequence[ItemMeta], generator: Any, cfg: PseudoConfig | None = None,
                   *, candidates: np.ndarray | None = None, progress: bool = True) -> PseudoResult:
    """Ask the LLM for one likely positive per sparse user, within the prompt budget."""
    from tqdm.auto import tqdm

    from recwise.llm import GenerationParams, parse_choice

    cfg = cfg or PseudoConfig()
    stats = StepStats("llmrec").start()
    cands = candidates if candidates is not None else candidates_for(seqs, cfg)
    lengths = np.array([len(train_items(seqs, u)) for u in range(seqs.n_users)])
    users = np.arange(seqs.n_users)
    order = [int(u) for u in users[np.lexsort((users, lengths))]]
    asked = order[:min(cfg.users, cfg.budget)]  # one prompt each; retries take what is left of the budget
    prompts = {u: pseudo_prompt([meta[int(i)] for i in train_items(seqs, u)[-cfg.history:]],
                                [meta[int(i)] for i in cands[u]]) for u in asked}
    labels = {u: [_movie(meta[int(i)]) for i in cands[u]] for u in asked}
    raw: dict[int, list[str]] = {u: [] for u in asked}
    chosen: dict[int, int] = {}
    spent = 0
    base = GenerationParams(max_tokens=cfg.max_tokens)
    pending = list(asked)
    bar = tqdm(total=len(asked), desc="llmrec", disable=not progress)
    for attempt in range(cfg.max_attempts):
        batch = pending[:max(cfg.budget - spent, 0)]
        if not batch:
            break
        params = base if attempt == 0 else replace(base, temperature=0.7, seed=attempt)
        ps = [prompts[u] if attempt == 0 else _reminder(prompts[u], cfg.n_candidates) for u in batch]
        before = generator.backend_calls
        texts = generator.generate(ps, params)
        calls = generator.backend_calls - before
        spent += len(batch)
        stats.prompts += len(batch)
        stats.llm_calls += calls
        stats.cache_hits += len(batch) - calls
        still = []
        for u, text in zip(batch, texts):
            raw[u].append(text)
            pick = parse_choice(text, labels[u])
            if pick is None:
                still.append(u)
            else:
                chosen[u] = int(cands[u][labels[u].index(pick)])
                bar.update(1)
        pending = still + pending[len(batch):]
    bar.close()
    pairs, records = [], []
    for u in asked:
        fallback = u not in chosen
        item = chosen.get(u)
        if fallback:
            stats.fallbacks += 1
            if cfg.fallback == "first":
                item = int(cands[u][0])
        if item is not None:
            pairs.append((u, item))
        records.append({"user": u, "train_len": int(lengths[u]), "candidates": [int(i) for i in cands[u]],
                        "candidate_titles": labels[u], "answers": raw[u], "attempts": len(raw[u]),
                        "fallback": fallback, "item": item,
                        "title": _movie(meta[item]) if item is not None else None})
    stats.extra = {"users_asked": len(asked), "pseudo_items": len(pairs), "fallback_rule": cfg.fallback,
                   "parsed": len(chosen), "budget": cfg.budget}
    return PseudoResult(pairs, records, stats.stop())
