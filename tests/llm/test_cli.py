"""``recwise llm ...`` commands, run in-process through the group's ``register``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from recwise.errors import ConfigError
from recwise.llm.cli import register

from .conftest import needs_minilm, needs_smollm


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="recwise")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub, lambda p: p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS))
    args = parser.parse_args(argv)
    return int(args.func(args))


@needs_smollm
def test_generate_twice_second_from_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str], smollm: Any) -> None:
    cache = str(tmp_path / "c.sqlite")
    argv = ["llm", "generate", "What is 2+3?", "--max-tokens", "8", "--cache-path", cache]
    assert run(argv) == 0
    first = capsys.readouterr()
    assert "5" in first.out and "[1 model call(s), 0 from cache]" in first.err
    assert run(argv) == 0
    second = capsys.readouterr()
    assert second.out == first.out and "[0 model call(s), 1 from cache]" in second.err
    assert run(["llm", "cache", "stats", "--cache-path", cache]) == 0
    stats = capsys.readouterr().out
    assert "entries: 1" in stats and re.search(r"generate (llamacpp|transformers) +smollm2:", stats)
    assert run(["llm", "cache", "clear", "--cache-path", cache]) == 0
    assert "deleted 1 entries" in capsys.readouterr().out


@needs_minilm
def test_embed_prints_unit_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str], minilm: Any) -> None:
    assert run(["llm", "embed", "hello world", "good night", "--cache-path", str(tmp_path / "c.sqlite"),
                "--quiet"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["hello world", "good night"]
    assert all(r["dim"] == 384 and abs(sum(x * x for x in r["embedding"]) - 1) < 1e-3 for r in rows)


def test_serve_rejects_bad_port() -> None:
    with pytest.raises(ConfigError, match="--port"):
        run(["llm", "serve", "--port", "0"])


def test_generate_passes_the_llamacpp_decoding_options_and_checks_them(tmp_path: Path) -> None:
    # checked when the config is built, before any model or cache is opened
    with pytest.raises(ConfigError, match="option 'quant'"):
        run(["llm", "generate", "--quant", "bogus", "--cache-path", str(tmp_path / "c.sqlite"), "hi"])
    with pytest.raises(ConfigError, match="decoding|batch"):
        run(["llm", "generate", "--batch", "0", "--cache-path", str(tmp_path / "c.sqlite"), "hi"])


def test_group_wires_every_leaf() -> None:
    for argv in (["llm", "cache", "stats"], ["llm", "cache", "clear"], ["llm", "serve"], ["llm", "embed", "x"]):
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers(dest="command"), lambda p: None)
        assert callable(parser.parse_args(argv).func)
