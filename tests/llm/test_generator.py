"""Prompts with image parts (for a vision model behind the HTTP backend), checked and cached like any other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recwise.errors import ConfigError, DataError
from recwise.llm import GenerationParams, Generator, HttpBackend, LLMCache, ask_number, image_part
from recwise.llm._generator import normalise_prompt, text_only

from .conftest import FakeBackend

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def photo(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "photo.png"
    path.write_bytes(PNG)
    return {"role": "user", "content": [{"type": "text", "text": "Where was this taken?"}, image_part(path)]}


def test_image_parts_are_checked_and_kept(tmp_path: Path) -> None:
    msg = photo(tmp_path)
    url = msg["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,iVBORw0KGgo")
    assert normalise_prompt([msg]) == [msg]
    with pytest.raises(ConfigError, match="content part"):
        normalise_prompt([{"role": "user", "content": [{"type": "audio", "data": "x"}]}])
    with pytest.raises(ConfigError, match="content part"):
        normalise_prompt([{"role": "user", "content": [{"type": "image_url", "image_url": "not-a-mapping"}]}])
    with pytest.raises(ConfigError, match="not an image"):
        image_part(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="missing.png"):
        image_part(tmp_path / "missing.png")


def test_local_backends_refuse_images_but_take_text_parts(tmp_path: Path) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert text_only(parts, "llamacpp") == [{"role": "user", "content": "a\nb"}]
    with pytest.raises(ConfigError, match="vision model behind the HTTP backend"):
        text_only([photo(tmp_path)], "llamacpp")


def test_the_image_is_part_of_the_cache_key(tmp_path: Path) -> None:
    backend = FakeBackend()
    gen = Generator(backend, LLMCache(tmp_path / "c.sqlite"))
    with_image = photo(tmp_path)
    text = {"role": "user", "content": [with_image["content"][0]]}
    gen.generate([[with_image], [text], [with_image]], GenerationParams(max_tokens=4))
    assert len(backend.rows) == 2  # the repeated image prompt came from the first call's work
    other = tmp_path / "other.png"
    other.write_bytes(PNG + b"\x00")
    moved = {"role": "user", "content": [text["content"][0], image_part(other)]}
    gen.generate([[moved]], GenerationParams(max_tokens=4))
    assert len(backend.rows) == 3


def test_a_retry_reminder_is_one_more_text_part(tmp_path: Path) -> None:
    backend = FakeBackend(replies=["no number here", "42"])
    res = ask_number(Generator(backend, None), [photo(tmp_path)])
    assert res.ok and res.value == 42
    retry = backend.rows[1].prompt[-1]["content"]
    assert retry[:2] == photo(tmp_path)["content"] and retry[2]["type"] == "text"


def test_the_http_backend_sends_parts_as_openai_content(tmp_path: Path) -> None:
    import httpx

    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": "48.85, 2.35"}, "finish_reason": "stop"}],
                                         "usage": {"prompt_tokens": 5, "completion_tokens": 4}})

    backend = HttpBackend("vision-model", base_url="http://vision.test/v1", max_retries=0)
    backend.client._client = httpx.Client(transport=httpx.MockTransport(handler))
    assert Generator(backend, None).complete([photo(tmp_path)]) == "48.85, 2.35"
    assert sent[0]["messages"] == [photo(tmp_path)]


class DiesOnSecondCall(FakeBackend):
    """A backend killed in the middle of a long batch: its second call raises."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def complete(self, rows: Any) -> Any:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return super().complete(rows)


def test_a_killed_batch_keeps_the_answers_of_its_finished_calls(tmp_path: Path) -> None:
    prompts = [f"question {'x' * i}" for i in range(10)]
    dying = DiesOnSecondCall()
    with pytest.raises(KeyboardInterrupt):
        Generator(dying, LLMCache(tmp_path / "c.sqlite"), save_every=4).generate(prompts)
    assert [len(str(r.prompt)) for r in dying.rows] == [18, 17, 16, 15]  # longest prompts first
    again = FakeBackend()
    gen = Generator(again, LLMCache(tmp_path / "c.sqlite"), save_every=4)
    out = gen.generate(prompts)
    assert gen.backend_calls == 6 and len(again.rows) == 6  # only the rows the killed run never finished
    assert out == Generator(FakeBackend(), None).generate(prompts)  # same texts as one uninterrupted call
    with pytest.raises(ConfigError, match="save_every"):
        Generator(FakeBackend(), None, save_every=0)
