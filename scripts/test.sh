#!/usr/bin/env bash
# The test suite (the README's test command). Expects scripts/setup.sh to have run once.
#   bash scripts/test.sh            the full suite (what CI runs)
#   bash scripts/test.sh --fast     the everyday lane: everything not marked slow (under 3 minutes)
# Other arguments go to pytest (e.g. tests/tasks/sequential -x).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
args=()
for a in "$@"; do
    if [ "$a" = "--fast" ]; then args+=(-m "not slow"); else args+=("$a"); fi
done
exec .venv/bin/python -m pytest ${args[@]+"${args[@]}"}
