from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from recwise.config import config_from_dict, config_hash, parse_overrides
from recwise.errors import ConfigError
from recwise.train import TrainConfig


@dataclass(frozen=True)
class Demo:
    dims: tuple[int, ...] = (16, 8)
    rate: float = 0.1
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    n: int = 3


def test_strings_from_the_cli_are_coerced() -> None:
    cfg = config_from_dict(Demo, {"dims": "64,32", "rate": "1e-3", "flag": "true", "mode": "b", "n": "4"})
    assert cfg == Demo((64, 32), 1e-3, True, "b", 4)


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"dim": "1"}, "unknown option 'dim'.*did you mean 'dims'"),
        ({"n": "2.5"}, "option 'n' must be an int; got '2.5'"),
        ({"rate": "fast"}, "option 'rate' must be a number"),
        ({"flag": "maybe"}, "option 'flag' must be true or false"),
        ({"mode": "c"}, r"option 'mode' must be one of \['a', 'b'\]"),
    ],
)
def test_bad_values_name_the_option(values: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        config_from_dict(Demo, values)


def test_train_config_ranges_are_checked() -> None:
    with pytest.raises(ConfigError, match="train.epochs"):
        config_from_dict(TrainConfig, {"epochs": 0}, where="train")
    with pytest.raises(ConfigError, match="train.lr"):
        TrainConfig(lr=-1.0)


def test_hash_is_stable_and_sensitive() -> None:
    assert config_hash(Demo()) == config_hash(Demo())
    assert config_hash(Demo()) != config_hash(Demo(n=4))


def test_parse_overrides() -> None:
    assert parse_overrides(["train.lr=0.1", "model.dims=1,2"]) == {"train.lr": "0.1", "model.dims": "1,2"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])
