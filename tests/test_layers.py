"""The layers of DESIGN.md, checked on the imports of every module (including imports inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "recwise"

# a module of the package may import only its own layer and the layers listed for it
LOWER = {"errors", "config", "registry", "results", "provenance"}  # foundations every layer may use
ALLOWED = {
    "data": LOWER | {"data"},
    "nn": LOWER | {"nn", "data"},
    "metrics": LOWER | {"metrics", "data"},
    "train": LOWER | {"train", "data", "nn", "metrics"},
    "models": LOWER | {"models", "data", "nn", "metrics", "train"},
    "llm": LOWER | {"llm", "data"},
    # the retrieval core (retrievers, faiss, fine-tuning) sits beside models/; its dense encoder is the LLM layer's
    "retrieval": LOWER | {"retrieval", "data", "nn", "metrics", "train", "llm"},
    "select": LOWER | {"select", "data", "nn", "metrics", "train", "models", "llm"},  # AltFS asks an LLM
    "llmers": LOWER | {"llmers", "data", "llm", "metrics"},
    "bench": LOWER | {"bench", "train", "store"},
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [n for n in names if n == "recwise" or n.startswith("recwise.")]


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    bad = []
    for path in (SRC / layer).rglob("*.py") if (SRC / layer).is_dir() else [SRC / f"{layer}.py"]:
        for name in _imports(path):
            if name != "recwise" and _layer(name) not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)


def test_tasks_never_import_each_other() -> None:
    families = [p.name for p in (SRC / "tasks").iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert {"msr", "sequential", "selection", "pad", "llmers"} <= set(families)
    bad = []
    for fam in families:
        for path in (SRC / "tasks" / fam).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[:2] == ["recwise", "tasks"] and len(parts) > 2 and parts[2] not in (fam, "base"):
                    bad.append(f"tasks/{fam}/{path.name} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_public_module_hides_behind_an_underscore() -> None:
    """A module other packages import is public: no leading underscore (private helpers may keep one)."""
    users: dict[str, set[str]] = {}
    for path in _modules():
        own = path.relative_to(SRC).parts[0].removesuffix(".py")
        for name in _imports(path):
            if any(p.startswith("_") and not p.startswith("__") for p in name.split(".")) and _layer(name) != own:
                users.setdefault(name, set()).add(str(path.relative_to(SRC)))
    allowed = {
        "recwise.data.datasets._base",  # re-exported by recwise.data.datasets; read_csv shared by loaders
        "recwise.nn._scan_numba",  # train/determinism imports it for its side effect (numba's threading layer)
    }
    leaks = {k: v for k, v in users.items() if k not in allowed}
    assert not leaks, leaks
