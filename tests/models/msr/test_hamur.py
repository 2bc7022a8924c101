"""HAMUR: eval uses the adapter norm's running statistics; the released batch-statistics norm on request."""

from __future__ import annotations

import pytest
import torch

from recwise.errors import ConfigError
from recwise.models.msr.hamur import HAMUR
from tests.models.msr._helpers import ML_SCHEMA as SCHEMA
from tests.models.msr._helpers import ml_batch, train_steps


def trained(config: HAMUR.Config, batch: dict[str, torch.Tensor], steps: int = 15) -> tuple[HAMUR, list[float]]:
    torch.manual_seed(0)
    model = HAMUR(SCHEMA, config)
    losses = train_steps(model, batch, steps)
    return model.eval(), losses


def eval_in_pieces(model: HAMUR, batch: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model({k: v[i:i + size] for k, v in batch.items()})
                          for i in range(0, len(batch["label"]), size)])


def test_running_norm_makes_eval_independent_of_batch_composition() -> None:
    batch = ml_batch(384)
    model, losses = trained(HAMUR.Config(fcn_dims=(32, 16), k=8), batch)
    assert losses[-1] < losses[0]
    assert model.adapters[0].norm.running_mean.shape == (3, 16)
    assert "adapters.0.norm.running_var" in model.state_dict()
    full = eval_in_pieces(model, batch, 384)
    torch.testing.assert_close(eval_in_pieces(model, batch, 7), full, atol=1e-6, rtol=1e-5)
    perm = torch.randperm(384)
    shuffled = eval_in_pieces(model, {k: v[perm] for k, v in batch.items()}, 100)
    torch.testing.assert_close(shuffled, full[perm], atol=1e-6, rtol=1e-5)


def test_batch_norm_option_reproduces_the_released_batch_dependence() -> None:
    batch = ml_batch(384)
    model, _ = trained(HAMUR.Config(fcn_dims=(32, 16), k=8, adapter_norm="batch"), batch)
    assert not hasattr(model.adapters[0].norm, "running_mean")
    full = eval_in_pieces(model, batch, 384)
    assert (eval_in_pieces(model, batch, 7) - full).abs().max() > 1e-3


def test_defaults_and_large_variant() -> None:
    small = HAMUR(SCHEMA, HAMUR.Config())
    assert small.adapter_after == (1,) and small.hyper_net.output_dim == 35 * 35
    assert torch.equal(small.adapters[0].u_down, torch.ones(128, 35))  # released all-ones init
    large = HAMUR(SCHEMA, HAMUR.Config(fcn_dims=(64, 32, 32, 16), k=5, n_adapters=2))
    assert large.adapter_after == (2, 3) and len(large.adapters) == 2
    with pytest.raises(ConfigError, match="n_adapters"):
        HAMUR.from_options(SCHEMA, {"n_adapters": 3})
