#!/usr/bin/env bash
# Lint and type checks: ruff on the package, tests and benchmarks, mypy on the package.
# Settings (rules, per-file and per-module exceptions with their reasons) live in pyproject.toml.
# Expects scripts/setup.sh to have run once (ruff and mypy come with the dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
.venv/bin/python -m ruff check src tests benchmarks scripts
.venv/bin/python -m mypy src
