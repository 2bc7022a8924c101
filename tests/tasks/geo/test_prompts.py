"""G3's prompts: zero-shot and RAG texts, and the OpenAI-style image message."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from recwise.tasks.geo.prompts import chat, rag_prompt, references, zero_shot_prompt


def test_rag_prompt_lists_similar_and_dissimilar_coordinates() -> None:
    sim = np.array([[48.85661, 2.35222], [51.5, -0.12]])
    far = np.array([[-33.9, 151.2]])
    p = rag_prompt("Paris", sim, far)
    assert 'place name: "Paris"' in p
    assert "similar place names: [[48.8566, 2.3522], [51.5000, -0.1200]]" in p
    assert "dissimilar place names: [[-33.9000, 151.2000]]" in p
    assert p.endswith('{"latitude": float,"longitude": float}.')
    assert "dissimilar" not in rag_prompt("Paris", sim, None)
    assert references(np.zeros((0, 2))) == "[]"


def test_image_prompts_are_openai_content_parts(tmp_path: Path) -> None:
    img = tmp_path / "q.png"
    img.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    text = zero_shot_prompt(None)
    assert "given an image" in text and '"' not in text.split("image")[1][:3]
    msg = chat(text, img)
    assert msg[0]["role"] == "user"
    parts = msg[0]["content"]
    assert parts[0] == {"type": "text", "text": text}
    url = parts[1]["image_url"]
    assert parts[1]["type"] == "image_url" and url["detail"] == "low"
    assert base64.b64decode(url["url"].split(",", 1)[1]) == img.read_bytes()
    assert chat("hi") == [{"role": "user", "content": "hi"}]
