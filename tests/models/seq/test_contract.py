"""One contract for every registered sequential model."""

from __future__ import annotations

import pytest
import torch

from recwise.data.sequence import eval_inputs, make_examples, seq_schema
from recwise.registry import get_model, list_models
from recwise.tasks.sequential import evaluate, seq_loss
from recwise.train.checkpoint import load_model, save_model

MODELS = list_models("sequential")
MAX_LEN = 10
SMALL = {  # keep the CPU test fast; the defaults are the papers'
    "sigma": {"hidden_size": 32, "d_state": 8},
    "mamba4rec": {"hidden_size": 32, "d_state": 8},
    "sasrec": {"hidden_size": 32, "inner_size": 64},
    "bert4rec": {"hidden_size": 32, "inner_size": 64, "hidden_dropout": 0.0, "attn_dropout": 0.0},
}


def _build(name: str, n_items: int):  # noqa: ANN202
    cls = get_model("sequential", name)
    opts = dict(SMALL.get(name, {}))
    if "max_len" in cls.Config.__dataclass_fields__:
        opts["max_len"] = MAX_LEN
    torch.manual_seed(0)
    return cls(seq_schema(n_items), cls.Config(**opts))


def test_registry_lists_the_paper_models() -> None:
    assert {"gru4rec", "sasrec", "bert4rec", "mamba4rec", "sigma", "pop"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_loss_falls(name: str, planted) -> None:  # noqa: ANN001
    model = _build(name, planted.n_items)
    kind = model.examples[0]
    data = make_examples(planted, kind, MAX_LEN, "right")
    batch = {k: v[:32] for k, v in data.items()}
    model.eval()
    assert model(batch).shape == (32, planted.n_items + 1)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    torch.manual_seed(1)
    with torch.no_grad():
        first = float(seq_loss(model, batch))
    for _ in range(40 if name == "bert4rec" else 20):
        loss = seq_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    with torch.no_grad():
        last = float(seq_loss(model, batch))
    # planted items are uniform, so popularity can only reach log(30) from log(31)
    assert last < (first if name == "pop" else 0.8 * first)


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_and_batch_independence(name: str, planted, tmp_path) -> None:  # noqa: ANN001
    model = _build(name, planted.n_items).eval()
    data = eval_inputs(planted, "test", MAX_LEN)
    out = model(data)
    save_model(tmp_path / "m", model)
    again = load_model(tmp_path / "m").eval()
    assert type(again) is type(model) and again.config == model.config
    torch.testing.assert_close(again(data), out)
    # a row's scores do not depend on the rest of its batch
    for i in (0, 5):
        one = {k: v[i : i + 1] for k, v in data.items()}
        torch.testing.assert_close(model(one)[0], out[i], atol=1e-5, rtol=1e-5)
    # evaluation is the same in one batch or many
    items = torch.from_numpy(planted.items)
    a = evaluate(model, data, items, batch_size=1000)["all"]
    b = evaluate(model, data, items, batch_size=7)["all"]
    assert a == pytest.approx(b, abs=1e-9)

