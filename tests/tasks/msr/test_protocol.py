"""docs/msr.md's table of training defaults is what the presets resolve to (issue 17: docs that say
what the code does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recwise.registry import get_model, list_models
from recwise.tasks.msr.protocol import PRESETS, MSRRun, resolve_configs

DOC = Path(__file__).resolve().parents[3] / "docs" / "msr.md"


def _tables(text: str) -> dict[str, dict[str, list[str]]]:
    """Tables of the "Training defaults" section, keyed by their first header cell, rows by first cell."""
    section = text.split("### Training defaults", 1)[1].split("\n## ", 1)[0]
    out: dict[str, dict[str, list[str]]] = {}
    head = ""
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            head = "" if not line.startswith("|") else head
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not head:
            head = cells[0]
            out[head] = {}
        else:
            out[head][cells[0]] = cells[1:]
    return out


def _row(dataset: str, model: str) -> list[float]:
    t, _ = resolve_configs(MSRRun(dataset, model, 0))
    return [t.lr, t.weight_decay, t.batch_size, t.patience, t.epochs]


def _searched(model: str, cell: str) -> None:
    """The doc's "model options" cell (`embed_dim 32; fcn_dims 64-32-16; dropout 0.069`) names every
    key of the model's search space with the value the ml-100k preset resolves to."""
    _, mcfg = resolve_configs(MSRRun("ml-100k", model, 0))
    space = sorted(get_model("msr", model).search_space)
    doc = dict(part.split(" ", 1) for part in cell.split("; ")) if cell != "-" else {}
    assert sorted(doc) == space, model
    for key, text in doc.items():
        value = getattr(mcfg, key)
        if isinstance(value, (tuple, list)):
            assert text == "-".join(map(str, value)), (model, key)
        else:
            assert float(text) == pytest.approx(float(value), rel=1e-3), (model, key)


def test_the_ml100k_table_matches_every_models_preset() -> None:
    table = _tables(DOC.read_text())["model"]
    assert sorted(table) == sorted(list_models("msr"))
    for model, cells in table.items():
        # the tuned values are shown to 4 significant digits
        assert [float(c) for c in cells[:5]] == pytest.approx(_row("ml-100k", model), rel=1e-3), model
        _searched(model, cells[5])


def test_the_dataset_table_matches_every_other_preset_file() -> None:
    table = _tables(DOC.read_text())["dataset"]
    files = sorted(p.stem for p in PRESETS.glob("*.yaml") if p.stem != "ml-100k")
    assert sorted(table) == files
    for dataset, cells in table.items():
        for model in list_models("msr"):  # "the same training options for every model"
            assert [float(c) for c in cells] == pytest.approx(_row(dataset, model)), (dataset, model)
