"""tests/ mirrors src/recwise/: a test file sits under the path of the source it tests.

tests/<pkg path>/test_<name>.py needs the package src/recwise/<pkg path>/ and, in it, a module or
subpackage <name> (or _<name>, a private module); test_<module>_<aspect>.py is one aspect of
<module> (test_table_streaming.py tests data/table.py). Helpers (_helpers.py, conftest.py,
tests/fixtures/) are not test files and are not checked.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src" / "recwise"

# Test files that test a package as a whole or across modules, with the reason. Keep this short: a
# new test of one module belongs under that module's path instead.
EXCEPTIONS = {
    "test_layers.py": "DESIGN.md's import layers, over every module",
    "test_layout.py": "this file: the layout of tests/ itself",
    "bench/test_records.py": "benchmarks/records/: the kept grid folders still match what their commands build",
    "data/datasets/test_msr_datasets.py": "the five MSR loaders (kuairand, aliccp, amazon, douban, mind)",
    "llm/test_config.py": "configs and parameters across _factory and _generator",
    "llmers/test_offline.py": "the offline steps of text, knowledge and interaction on ML-100K, and each method",
    "llmers/test_real_llm.py": "the same offline steps with the real local LLM",
    "report/test_report.py": "the report package end to end: importer, table, page and the CLI commands",
    "select/test_planted.py": "every fs-core selector against planted truth",
    "select/test_deep_gates.py": "the gate selectors (autofield, adafs, optfs, lpfs) on planted truth",
    "select/test_deep_sensitivity.py": "the sensitivity selectors (shark, sfs) on planted truth",
}
# File names allowed in any folder of one kind, with the reason.
PER_FOLDER = {
    ("models", "test_contract.py"): "one contract for every registered model of the package",
    ("tasks", "test_cli.py"): "the task end to end through `recwise run` / `recwise bench`",
}


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts)


def _modules(package: Path) -> set[str]:
    """Names of the package's modules and subpackages, a private module's leading underscore dropped."""
    names = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    return {n.removeprefix("_") for n in names}


def _mirrors(rel: Path) -> bool:
    package = SRC.joinpath(*rel.parts[:-1])
    if not (package / "__init__.py").is_file():
        return False
    if len(rel.parts) > 2 and (rel.parts[0], rel.name) in PER_FOLDER:
        return True
    name = rel.stem.removeprefix("test_")
    return any(name == m or name.startswith(m + "_") for m in _modules(package))


def test_every_test_file_sits_under_the_source_it_tests() -> None:
    misplaced = []
    for path in _test_files():
        rel = path.relative_to(TESTS)
        if rel.as_posix() not in EXCEPTIONS and not _mirrors(rel):
            misplaced.append(rel.as_posix())
    assert not misplaced, f"test files with no source module at their path under src/recwise: {misplaced}"


def test_exceptions_name_existing_files() -> None:
    assert [k for k in EXCEPTIONS if not (TESTS / k).is_file()] == []


def test_every_test_folder_is_a_package() -> None:
    """Test modules are imported as tests.<path> (helpers too), so every folder needs an __init__.py."""
    folders = {p.parent for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(d.relative_to(TESTS.parent)) for d in folders if not (d / "__init__.py").is_file()) == []
