"""SASRec's LLM-enhanced options: text init sets the rows, the AlphaRec text part stays frozen, KAR
uses the user column, and the defaults are untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recwise.data.sequence import seq_schema
from recwise.errors import ConfigError
from recwise.models.seq.sasrec import SASRec, SASRecConfig
from recwise.tasks.llmers.protocol import weighted_loss

N_ITEMS, D_TEXT, N_USERS = 40, 48, 7


@pytest.fixture()
def text_file(tmp_path):  # noqa: ANN001, ANN201
    g = torch.Generator().manual_seed(0)
    item = torch.randn(N_ITEMS + 1, D_TEXT, generator=g)
    item[0] = 0
    tables = {"item_text": item, "item_knowledge": torch.randn(N_ITEMS + 1, D_TEXT, generator=g),
              "user_knowledge": torch.randn(N_USERS, D_TEXT, generator=g)}
    path = tmp_path / "text.safetensors"
    save_file(tables, str(path))
    return path, tables


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, N_ITEMS + 1, (6, 10), generator=g)
    seq[:2, 7:] = 0  # two right-padded rows
    length = (seq > 0).sum(1)
    target = torch.randint(1, N_ITEMS + 1, (6, 10), generator=g) * (seq > 0)
    return {"item_seq": seq, "item_len": length, "target_seq": target, "user": torch.arange(6) % N_USERS}


def _model(**kw) -> SASRec:  # noqa: ANN003
    torch.manual_seed(0)
    return SASRec(seq_schema(N_ITEMS), SASRecConfig(n_layers=1, max_len=10, hidden_size=16, n_heads=2, **kw))


def test_text_init_rows_are_the_principal_components_of_the_text(text_file) -> None:  # noqa: ANN001
    path, tables = text_file
    model = _model(item_init="text", text_path=str(path))
    w = model.item_embedding.weight.detach().double()
    assert torch.all(w[0] == 0)  # padding row
    x = tables["item_text"][1:].double()
    xc = (x - x.mean(0)).numpy()
    # independent check: sklearn's PCA scores, equal up to a sign per component and one global scale
    from sklearn.decomposition import PCA

    ref = PCA(16, svd_solver="full").fit_transform(xc)
    got = w[1:].numpy()
    scale = got.std() / ref.std()
    signs = np.sign((got * ref).sum(0))
    np.testing.assert_allclose(got, ref * scale * signs, atol=1e-5)
    assert got.std() == pytest.approx(0.02, rel=1e-3)  # the random init's scale
    assert "item_text" not in model.state_dict()  # used once; the table then trains as usual
    assert model.item_embedding.weight.requires_grad


def test_text_init_differs_from_random_and_default_is_unchanged(text_file) -> None:  # noqa: ANN001
    path, _ = text_file
    plain, text = _model(), _model(item_init="text", text_path=str(path))
    assert not torch.allclose(plain.item_embedding.weight, text.item_embedding.weight)
    # every other weight is drawn exactly as in the plain model
    ps, ts = plain.state_dict(), text.state_dict()
    assert all(torch.equal(ps[k], ts[k]) for k in ps if k != "item_embedding.weight")


def test_alpharec_text_part_stays_frozen_and_tower_learns(text_file) -> None:  # noqa: ANN001
    path, tables = text_file
    model = _model(item_tower="alpharec", text_path=str(path))
    assert not hasattr(model, "item_embedding")  # no ID table
    assert all(p.data_ptr() != model.item_text.data_ptr() for p in model.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        loss = weighted_loss(model, _batch(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    assert torch.equal(after["item_text"], tables["item_text"])  # frozen text part
    assert torch.equal(after["item_text"], before["item_text"])
    assert not torch.equal(after["tower.0.weight"], before["tower.0.weight"])  # the MLP trains
    w = model.item_weights()
    assert torch.all(w[0] == 0)  # padding has no representation


def test_kar_adds_user_and_item_knowledge(text_file) -> None:  # noqa: ANN001
    path, _ = text_file
    model = _model(knowledge="kar", text_path=str(path)).eval()
    b = _batch()
    out = model(b)
    other = model({**b, "user": (b["user"] + 1) % N_USERS})
    assert not torch.allclose(out, other)  # the user's knowledge vector enters the score
    with torch.no_grad():  # serving path: pre-computed user and item tables give the same scores
        torch.testing.assert_close(model(b), out.detach())
        torch.testing.assert_close(model(b), out.detach())
    with pytest.raises(ConfigError, match="user"):
        model({k: v for k, v in b.items() if k != "user"})
    loss = weighted_loss(model.train(), b)
    loss.backward()
    assert model.user_adaptor.gate.weight.grad is not None and model.item_adaptor.gate.weight.grad is not None


def test_eval_table_cache_follows_weight_changes(text_file) -> None:  # noqa: ANN001
    path, _ = text_file
    model = _model(item_tower="alpharec", text_path=str(path)).eval()
    with torch.no_grad():
        a = model.item_weights().clone()
        assert model.item_weights() is model.item_weights()  # computed once while weights stay
        model.tower[2].bias.add_(1.0)
        b = model.item_weights()
    assert not torch.allclose(a[1:], b[1:])


def test_eval_table_is_recomputed_after_a_fused_adam_step(text_file) -> None:  # noqa: ANN001
    # torch's fused Adam on CPU updates parameters without bumping their _version: the table must
    # still follow the weights from one validation to the next (train() forgets it)
    path, _ = text_file
    model = _model(item_tower="alpharec", text_path=str(path))
    opt = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    with torch.no_grad():
        a = model.eval().item_weights().clone()
    model.train()
    model.item_weights().sum().backward()
    opt.step()
    with torch.no_grad():
        b = model.eval().item_weights()
        fresh = model._item_table()
    assert not torch.allclose(a[1:], b[1:])
    torch.testing.assert_close(b, fresh)


def test_option_errors(tmp_path, text_file) -> None:  # noqa: ANN001
    path, _ = text_file
    with pytest.raises(ConfigError, match="text_path"):
        SASRecConfig(item_init="text")
    with pytest.raises(ConfigError, match="exclude"):
        SASRecConfig(item_init="text", item_tower="alpharec", text_path=str(path))
    with pytest.raises(ConfigError, match="not found"):
        _model(item_init="text", text_path=str(tmp_path / "missing.safetensors"))
    save_file({"item_text": torch.zeros(5, 8)}, str(tmp_path / "small.safetensors"))
    with pytest.raises(ConfigError, match="rows"):
        _model(item_tower="alpharec", text_path=str(tmp_path / "small.safetensors"))
    with pytest.raises(ConfigError, match="item_knowledge"):
        _model(knowledge="kar", text_path=str(tmp_path / "small.safetensors"))


def test_kar_item_only_ignores_the_user(text_file) -> None:  # noqa: ANN001
    path, _ = text_file
    model = _model(knowledge="kar", kar_user=False, text_path=str(path)).eval()
    assert not hasattr(model, "user_adaptor") and "user_knowledge" not in model.state_dict()
    b = _batch()
    torch.testing.assert_close(model(b), model({**b, "user": (b["user"] + 1) % N_USERS}))
    assert not torch.allclose(model.item_weights()[1:], model.item_embedding.weight[1:])  # item knowledge enters
