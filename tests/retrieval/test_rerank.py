"""The cross-encoder reranker: options, group datasets, and a short fit that moves the positive up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recwise.errors import ConfigError, DataError
from recwise.retrieval import Ranking
from recwise.retrieval.rerank import CrossEncoderReranker, Group, RerankerConfig, groups_dataset


@pytest.mark.parametrize(("kw", "msg"), [({"epochs": 0}, "rerank.epochs"), ({"lr": 2.0}, "rerank.lr"),
                                         ({"batch_size": True}, "rerank.batch_size")])
def test_bad_options(kw: dict[str, object], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        RerankerConfig(**kw)  # type: ignore[arg-type]


def test_unknown_model_folder_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    with pytest.raises(ConfigError, match="rerank.model"):
        CrossEncoderReranker(RerankerConfig(model=str(tmp_path / "nope")))


def test_groups_must_share_one_size() -> None:
    pytest.importorskip("datasets")
    data = groups_dataset([Group("q", "p", ("a", "b")), Group("q2", "p2", ("c", "d"))])
    assert data.column_names == ["query", "positive", "negative_1", "negative_2"]
    with pytest.raises(DataError, match="same number"):
        groups_dataset([Group("q", "p", ("a", "b")), Group("q2", "p2", ("c",))])
    with pytest.raises(DataError, match="no training groups"):
        groups_dataset([])


@pytest.mark.slow
def test_fit_puts_the_planted_positive_first_and_survives_save_load(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    names = ["Peru", "Chile", "France", "Spain", "Italy", "Norway", "Japan", "Kenya"]
    docs = [f"{n} is a country; its capital city is listed in the atlas." for n in names]
    groups = [Group(f"Tell me about {n}.", docs[i], tuple(docs[(i + k) % 8] for k in range(1, 7)))
              for i, n in enumerate(names)]
    rr = CrossEncoderReranker(RerankerConfig(epochs=4, batch_size=8, lr=2e-4, max_length=64))
    rr.fit(groups, seed=0)
    assert rr.fit_stats_["groups"] == 8 and rr.fit_stats_["pairs_per_second"] > 0
    cand = Ranking(np.array([[1, 2, 0, 3]]), np.zeros((1, 4), dtype=np.float32))
    top = rr.rerank([groups[0].query], cand, docs, k=2)
    assert top.rows[0, 0] == 0
    rr.save(tmp_path / "rr")
    again = CrossEncoderReranker(folder=tmp_path / "rr")
    pairs = [(groups[0].query, d) for d in docs[:3]]
    assert np.allclose(again.score(pairs), rr.score(pairs), atol=1e-5)


def test_group_loss_is_the_softmax_cross_entropy_of_the_positive() -> None:
    pytest.importorskip("sentence_transformers")
    import torch

    from recwise.retrieval.rerank import group_loss

    rr = CrossEncoderReranker(RerankerConfig(max_length=32))
    inputs = [["q one", "q two"], ["pos a", "pos b"], ["neg a1", "neg b1"], ["neg a2", "neg b2"]]
    loss = group_loss(rr.model)
    with torch.no_grad():
        got = float(loss(inputs, torch.zeros(2)))
        scores = torch.tensor([[float(s) for s in rr.model.predict([[q, col[i]] for col in inputs[1:]],
                                                                    activation_fn=torch.nn.Identity())]
                               for i, q in enumerate(inputs[0])])
    want = float(torch.nn.functional.cross_entropy(scores, torch.zeros(2, dtype=torch.long)))
    assert got == pytest.approx(want, abs=1e-4)
