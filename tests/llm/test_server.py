"""The server app without models: fault routes only when enabled; concurrent requests batched."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from recwise.llm import Completion, Row
from recwise.llm._server import create_app

fastapi = pytest.importorskip("fastapi", reason="server extras absent: pip install 'recwise[llm]'")
from fastapi.testclient import TestClient  # noqa: E402


class BatchRecorder:
    name = "rec"
    fingerprint = "rec"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def complete(self, rows: Sequence[Row]) -> list[Completion]:
        self.batches.append(len(rows))
        return [Completion(f"{r.prompt}:{r.seed}", 3, 2) for r in rows]


def test_fault_routes_exist_only_when_enabled() -> None:
    plain = TestClient(create_app(None, None, model_name="m"))
    assert plain.post("/_faults", json={"plan": [{"kind": "http_500"}]}).status_code in (404, 405)
    assert plain.get("/v1/models").json()["data"] == []
    faulty = TestClient(create_app(BatchRecorder(), None, model_name="m", faults=True))
    assert faulty.post("/_faults", json={"plan": [{"kind": "nope"}]}).status_code == 400
    faulty.post("/_faults", json={"plan": [{"kind": "http_429", "retry_after": 7}]})
    r = faulty.post("/v1/completions", json={"model": "m", "prompt": "x"})
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert faulty.post("/v1/completions", json={"model": "m", "prompt": "x"}).status_code == 200
    assert faulty.get("/_faults").json() == {"remaining": 0, "requests": 2, "batches": [1]}


def test_concurrent_requests_share_one_batch_and_keep_order() -> None:
    backend = BatchRecorder()
    client = TestClient(create_app(backend, None, model_name="m", batch_window_s=0.5))

    def ask(i: int) -> str:
        body = {"model": "m", "prompt": f"p{i}", "temperature": 0, "max_tokens": 2}
        return client.post("/v1/completions", json=body).json()["choices"][0]["text"]

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(ask, range(4)))
    assert texts == [f"p{i}:0" for i in range(4)]
    assert backend.batches == [4]


def test_request_validation() -> None:
    client = TestClient(create_app(BatchRecorder(), None, model_name="m"))
    assert client.post("/v1/completions", json={"model": "other", "prompt": "x"}).status_code == 404
    assert client.post("/v1/completions", json={"model": "m", "prompt": 3}).status_code == 400
    bad_role = {"model": "m", "messages": [{"role": "x", "content": "y"}]}
    assert client.post("/v1/chat/completions", json=bad_role).status_code == 400
    assert client.post("/v1/chat/completions", json={"model": "m", "messages": [], "stream": True}).status_code == 400
    assert client.post("/v1/embeddings", json={"model": "minilm", "input": "x"}).status_code == 404
    r = client.post("/v1/completions", json={"model": "m", "prompt": ["a", "b"], "n": 2, "seed": 5, "temperature": 1})
    assert [c["index"] for c in r.json()["choices"]] == [0, 1, 2, 3]
    assert r.json()["choices"][0]["text"] == "a:5"  # choice 0 uses the request seed itself
