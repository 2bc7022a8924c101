"""`--preset` of the sequential task: sigma-paper's options reach each model's cell; bad keys are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from recwise.cli import build_parser
from recwise.errors import ConfigError
from recwise.tasks.sequential import TASK
from recwise.tasks.sequential.protocol import load_preset, resolve_preset

MODELS = ["gru4rec", "sasrec", "mamba4rec", "sigma"]


def _cells(argv: list[str]) -> dict[str, dict]:
    args = build_parser().parse_args(["bench", "sequential", "--models", ",".join(MODELS), "--seeds", "1", *argv])
    units = args.units.split(",")
    cells = TASK.cells(args, units, [0], TASK.options(args, units))
    return {c.model: c.options for c in cells}


def test_sigma_paper_preset_gives_sigmas_baseline_configs() -> None:
    cells = _cells(["--preset", "sigma-paper"])
    sasrec = {"n_heads": 8, "n_layers": 2, "hidden_dropout": 0.2, "attn_dropout": 0.2}
    assert cells["sasrec"]["model"].items() >= sasrec.items()
    assert cells["gru4rec"]["model"]["hidden_size"] == 128 and cells["gru4rec"]["model"]["embedding_size"] == 64
    assert cells["sigma"]["model"]["flip_len"] == 45 and cells["sigma"]["model"]["gate"] == "as_released"
    for m in MODELS:  # every model on prefix examples at batch 2048, SIGMA's training options
        assert cells[m]["data"]["examples"] == "prefix"
        assert cells[m]["train"].items() >= {"batch_size": 2048, "lr": 1e-3, "patience": 10, "epochs": 200}.items()
        assert cells[m]["preset"] == "sigma-paper"


def test_command_line_overrides_the_preset_and_no_preset_keeps_defaults() -> None:
    cells = _cells(["--preset", "sigma-paper", "--set", "train.patience=3", "--examples", "auto", "--epochs", "1"])
    assert cells["sasrec"]["train"]["patience"] == "3" and cells["sasrec"]["train"]["epochs"] == "1"
    assert cells["sasrec"]["data"]["examples"] == "auto"
    plain = _cells([])
    assert "preset" not in plain["sasrec"] and "n_heads" not in plain["sasrec"].get("model", {})


def test_unknown_keys_and_names_are_errors(tmp_path: Path) -> None:
    bad_option = tmp_path / "bad.yaml"
    bad_option.write_text("models:\n  sasrec:\n    n_head: 8\n")
    with pytest.raises(ConfigError, match="n_head"):
        _cells(["--preset", str(bad_option)])
    bad_top = tmp_path / "top.yaml"
    bad_top.write_text("trian:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="trian"):
        load_preset(bad_top)
    bad_model = tmp_path / "model.yaml"
    bad_model.write_text("models:\n  sasrekk: {}\n")
    with pytest.raises(ConfigError, match="sasrekk"):
        load_preset(bad_model)
    bad_train = tmp_path / "train.yaml"
    bad_train.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        resolve_preset(load_preset(bad_train), "gru4rec")
    with pytest.raises(ConfigError, match="sigma-paper"):  # the message lists the named presets
        load_preset("sigma-papr")
