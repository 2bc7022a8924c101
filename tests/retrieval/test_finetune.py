"""Fine-tuning through sentence-transformers' trainer: options, the training table, and a loss that learns."""

from __future__ import annotations

import numpy as np
import pytest

from recwise.errors import ConfigError
from recwise.retrieval import FinetuneConfig, SentenceEncoder, finetune, local_sentence_transformer, training_dataset


@pytest.mark.parametrize(("kwargs", "message"), [({"batch_size": 1}, "train.batch_size"), ({"lr": 0.0}, "train.lr"),
                                                 ({"epochs": 0}, "train.epochs"), ({"loss": "triplet"}, "train.loss"),
                                                 ({"precision": "fp16"}, "train.precision")])
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FinetuneConfig(**kwargs)


def test_training_table_columns() -> None:
    assert training_dataset([("q", "p", "n")]).column_names == ["anchor", "positive", "negative"]
    assert training_dataset([("q", "p", None)]).column_names == ["anchor", "positive"]
    with pytest.raises(ConfigError, match="every triple has a negative or none"):
        training_dataset([("q", "p", "n"), ("q2", "p2", None)])
    with pytest.raises(ConfigError, match="no training triples"):
        training_dataset([])


# arbitrary pairings the pre-trained encoder does not know: training must pull each code towards its word
PAIRS = [("code zq1", "volcano"), ("code zq2", "violin"), ("code zq3", "glacier"), ("code zq4", "teapot"),
         ("code zq5", "saxophone"), ("code zq6", "cactus"), ("code zq7", "lighthouse"), ("code zq8", "parachute")]


def _margin(model: object) -> float:
    enc = SentenceEncoder(model)
    q = enc.encode([a for a, _ in PAIRS])
    p = enc.encode([b for _, b in PAIRS])
    sims = q @ p.T
    return float(np.mean(np.diag(sims)) - np.mean(sims[~np.eye(len(PAIRS), dtype=bool)]))


def test_bf16_encoding_is_close_to_float32_but_not_the_same_computation() -> None:
    model = local_sentence_transformer("minilm")
    texts = [b for _, b in PAIRS] + ["the boundary layer of a flat plate at high mach number"]
    v32 = SentenceEncoder(model).encode(texts)
    v16 = SentenceEncoder(model, precision="bf16").encode(texts)
    assert v16.dtype == np.float32 and v16.shape == v32.shape
    np.testing.assert_allclose(np.linalg.norm(v16, axis=1), 1.0, atol=1e-5)
    cos = np.sum(v16 * v32, axis=1)
    assert cos.min() > 0.999  # observed ~0.99999 on Cranfield abstracts
    assert np.abs(v16 - v32).max() > 1e-5  # autocast ran: bfloat16 products differ from float32 ones
    with pytest.raises(ConfigError, match="precision"):
        SentenceEncoder(model, precision="fp16")  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "precision"), [("mnrl", "fp32"), ("cached-mnrl", "fp32"), ("mnrl", "bf16")])
def test_training_pulls_queries_to_their_positives(loss: str, precision: str) -> None:
    model = local_sentence_transformer("minilm")
    before = _margin(model)
    triples = [(a, b, PAIRS[(i + 1) % len(PAIRS)][1]) for i, (a, b) in enumerate(PAIRS)]
    stats = finetune(model, triples * 4, FinetuneConfig(epochs=2, batch_size=8, lr=1e-4, max_seq_length=16,
                                                        loss=loss, mini_batch_size=4, precision=precision),  # type: ignore[arg-type]
                     seed=0)
    assert stats["train_samples_per_second"] > 0
    assert _margin(model) > before + 0.02  # observed: -0.0002 -> 0.032 (mnrl)
    assert abs(_margin(local_sentence_transformer("minilm")) - before) < 1e-6  # the shared encoder is untouched
