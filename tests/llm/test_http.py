"""The HTTP backend against a real ``recwise llm serve`` process, faults included."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from recwise.llm import Encoder, GenerationParams, Generator, HttpBackend, HttpClient, HttpEncoderBackend, LLMError

from .conftest import free_port, needs_minilm, needs_smollm

pytestmark = [needs_smollm, needs_minilm]

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
ONE = GenerationParams(max_tokens=1)


def http(server: str, **options: Any) -> Generator:
    opts = {"timeout_s": 60.0, "backoff_s": 0.05, **options}
    return Generator(HttpBackend("smollm2", base_url=server, **opts), None)


@pytest.mark.slow  # a real server process loading SmolLM2 and MiniLM
def test_round_trip_equals_local_greedy(server: str, smollm: Any) -> None:
    params = GenerationParams(max_tokens=8)
    remote = http(server).generate([FRANCE, "The opposite of hot is"], params)
    local = Generator(smollm, None)
    assert remote == [local.complete(FRANCE, params), local.complete("The opposite of hot is", params)]
    assert "Paris" in remote[0]


@pytest.mark.slow
def test_seeded_sample_through_server_equals_local(server: str, smollm: Any) -> None:
    params = GenerationParams(temperature=1.0, max_tokens=5, n=2, seed=11)
    assert http(server).sample([FRANCE], params) == Generator(smollm, None).sample([FRANCE], params)


@pytest.mark.slow
def test_embeddings_round_trip(server: str, minilm: Any) -> None:
    texts = ["a red apple", "a green pear"]
    remote = Encoder(HttpEncoderBackend("minilm", base_url=server, timeout_s=60), None).encode(texts)
    np.testing.assert_allclose(remote, Encoder(minilm, None).encode(texts), atol=1e-5)


def test_connection_refused_is_retried_then_fails(tmp_path: Any) -> None:
    client = HttpClient(f"http://127.0.0.1:{free_port()}/v1", max_retries=2, backoff_s=0.01, timeout_s=2)
    gen = Generator(HttpBackend("m", client=client), None)
    with pytest.raises(LLMError, match="cannot connect.*3 attempts"):
        gen.complete("x", ONE)
    assert client.attempts == 3 and len(client.waits) == 2


@pytest.mark.slow
def test_timeout_then_recovery(server: str, faults: Any) -> None:
    faults.plan([{"kind": "delay", "seconds": 3}])
    no_retry = http(server, timeout_s=1.0, max_retries=0)
    start = time.monotonic()
    with pytest.raises(LLMError, match="timed out"):
        no_retry.complete("Hi", ONE)
    assert time.monotonic() - start < 2.5
    faults.plan([{"kind": "delay", "seconds": 3}])
    gen = http(server, timeout_s=1.5, max_retries=1)
    assert isinstance(gen.complete("Hi", ONE), str)
    assert gen.backend.client.attempts == 2 and faults.stats()["requests"] == 2


@pytest.mark.slow
def test_http_500_and_malformed_are_retried(server: str, faults: Any) -> None:
    faults.plan([{"kind": "http_500"}, {"kind": "malformed"}])
    gen = http(server, max_retries=2)
    text = gen.complete(FRANCE, ONE)
    assert text == http(server).complete(FRANCE, ONE)
    assert gen.backend.client.attempts == 3 and faults.stats()["remaining"] == 0


@pytest.mark.slow
def test_retry_after_is_honoured(server: str, faults: Any) -> None:
    faults.plan([{"kind": "http_429", "retry_after": 1.5}])
    gen = http(server, max_retries=1)
    start = time.monotonic()
    gen.complete("Hi", ONE)
    assert time.monotonic() - start >= 1.5
    assert gen.backend.client.waits[0] >= 1.5


@pytest.mark.slow
def test_retry_after_above_limit_fails_at_once(server: str, faults: Any) -> None:
    faults.plan([{"kind": "http_429", "retry_after": 120}])
    gen = http(server, max_retries=3, max_retry_after_s=10)
    start = time.monotonic()
    with pytest.raises(LLMError, match="Retry-After 120"):
        gen.complete("Hi", ONE)
    assert time.monotonic() - start < 5 and gen.backend.client.attempts == 1


@pytest.mark.slow
def test_retries_are_bounded(server: str, faults: Any) -> None:
    faults.plan([{"kind": "http_500"}] * 5)
    gen = http(server, max_retries=2)
    with pytest.raises(LLMError, match="HTTP 500; gave up after 3 attempts"):
        gen.complete("Hi", ONE)
    stats = faults.stats()
    assert (stats["remaining"], stats["requests"]) == (2, 3)


@pytest.mark.slow
def test_client_errors_are_not_retried(server: str, faults: Any) -> None:
    gen = Generator(HttpBackend("no-such-model", base_url=server, max_retries=3, backoff_s=0.05), None)
    with pytest.raises(LLMError, match="HTTP 404"):
        gen.complete("Hi", ONE)
    assert faults.stats()["requests"] == 1


@pytest.mark.slow
def test_concurrent_requests_are_batched_and_ordered(server: str) -> None:
    gen = http(server, concurrency=4)
    prompts = [f"{i} + {i} =" for i in range(6)]
    params = GenerationParams(max_tokens=2)
    assert gen.generate(prompts, params) == [http(server, concurrency=1).complete(p, params) for p in prompts]
