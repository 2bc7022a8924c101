#!/usr/bin/env bash
# The test suite (the README's test command). Expects scripts/setup.sh to have run once.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
