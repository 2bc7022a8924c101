"""provenance(): what a result row records about where it came from."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import recwise
from recwise import provenance as prov_mod
from recwise.provenance import git_commit, provenance


def test_fields_and_defaults() -> None:
    p = provenance(executor="ray", deterministic=True)
    assert set(p) == {"git_commit", "git_dirty", "version", "python", "packages", "platform", "cpu", "cpu_capability",
                      "cpu_count", "threads", "executor", "deterministic"}
    assert p["version"] == recwise.__version__ and p["python"] == ".".join(map(str, sys.version_info[:3]))
    assert p["packages"]["numpy"] == np.__version__ and p["packages"]["torch"] == torch.__version__
    assert set(p["packages"]) == {"torch", "numpy", "scikit-learn", "numba"}
    assert p["threads"] == torch.get_num_threads()  # torch is imported: its thread count by default
    assert provenance(threads=3)["threads"] == 3
    assert (p["executor"], p["deterministic"]) == ("ray", True) and provenance()["deterministic"] is None
    assert p["cpu_count"] == os.cpu_count()
    assert p["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # e.g. "AVX512", "AVX2", "DEFAULT"
    if sys.platform.startswith("linux"):  # the first processor's model name, as /proc/cpuinfo gives it
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        assert p["cpu"] == (names[0] if names else None)
    json.dumps(p)  # JSON-ready as it is


def test_git_fields_of_this_checkout() -> None:
    sha = git_commit()
    if sha is None:  # an installed copy outside a git checkout
        assert provenance()["git_dirty"] is None
        return
    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=prov_mod._SOURCE, capture_output=True, text=True)
    assert head.stdout.strip() == sha
    assert isinstance(provenance()["git_dirty"], bool)


def test_without_torch_imported_threads_are_unknown() -> None:
    code = ("import sys; from recwise.provenance import provenance; p = provenance(); "
            "assert 'torch' not in sys.modules, 'provenance imported torch'; print(p['threads'], p['cpu_capability'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None None"
