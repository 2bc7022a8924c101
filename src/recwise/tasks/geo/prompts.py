"""G3's geo-diversification prompts (``llm_predict.py``), for an image or for a place name.

The released prompts ask a multimodal LLM for ``{"latitude": float, "longitude": float}``, once
without references (zero-shot) and once per RAG size k with the GPS of the k most similar and the
k least similar database entries. With an image (a served vision model), the user message's
content is a list of OpenAI-style parts: the text, then the image as a base64 data URL with
``detail: low`` (as released). Offline, the text LLM gets the query's text (a place name) in the
same sentences, with "image" replaced by "place name".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["chat", "rag_prompt", "references", "zero_shot_prompt"]

_FORMAT = ('Your answer should be in the following JSON format without any other information: '
           '{"latitude": float,"longitude": float}.')
_MUST = ("Remember, you must have an answer, just output your best guess, don't answer me that you can't give "
         "a location.")


def references(latlon: np.ndarray) -> str:
    """``[[lat, lon], ...]`` with 4 decimals (about 11 m), as the released ``str(list)`` of pairs."""
    return "[" + ", ".join(f"[{a:.4f}, {b:.4f}]" for a, b in np.asarray(latlon).tolist()) + "]"


def _subject(query: str | None) -> tuple[str, str]:
    """('image', '') with an image; ('place name', ': "<name>"') for the offline text query."""
    return ("image", "") if query is None else ("place name", f': "{query}"')


def zero_shot_prompt(query: str | None) -> str:
    """The released zero-shot prompt; ``query`` is the place name (None: the image is attached)."""
    what, text = _subject(query)
    return (f"Suppose you are an expert in geo-localization, you have the ability to give two number GPS "
            f"coordination given an {what}. Please give me the location of the given {what}{text}. {_MUST} "
            f"{_FORMAT}")


def rag_prompt(query: str | None, similar: np.ndarray, dissimilar: np.ndarray | None) -> str:
    """The released RAG prompt with the similar (and, unless None, dissimilar) entries' coordinates."""
    what, text = _subject(query)
    refs = f"these are coordinates of some similar {what}s: {references(similar)}"
    if dissimilar is not None:
        refs += f", and these are coordinates of some dissimilar {what}s: {references(dissimilar)}"
    return (f"Suppose you are an expert in geo-localization, Please analyze this {what}{text} and give me a guess "
            f"of the location. Your answer must be to the coordinates level in (latitude, longitude) format. "
            f"For your reference, {refs}. {_MUST} {_FORMAT}")


def chat(text: str, image: str | Path | None = None, *, detail: str = "low") -> list[dict[str, Any]]:
    """One user message: the text, plus the image as an OpenAI-style content part when given."""
    if image is None:
        return [{"role": "user", "content": text}]
    from recwise.llm import image_part

    return [{"role": "user", "content": [{"type": "text", "text": text}, image_part(image, detail=detail)]}]

