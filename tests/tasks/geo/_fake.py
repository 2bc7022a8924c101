"""Fakes for the geo task tests: a planted GeoNames-like split, a trigram encoder and an LLM backend.

Places sit in 6 far-apart regions; a place's name starts with its region's syllable, so names
carry their region (the planted structure retrieval should find). The fake LLM answers a RAG
prompt with its first "similar" reference and never parses on the zero-shot prompt.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recwise.data.geo import GeoGallery, GeoQueries, GeoSplit
from recwise.llm import Completion

REGIONS = {"zor": (48.0, 10.0), "kal": (-30.0, 140.0), "mib": (40.0, -100.0), "tup": (-10.0, -55.0),
           "vex": (30.0, 80.0), "quo": (15.0, 35.0)}


def planted_split(per_region: int = 40, test_per_region: int = 5, seed: int = 0) -> GeoSplit:
    rng = np.random.default_rng(seed)
    names, latlon, texts = [], [], []
    for r, (lat, lon) in REGIONS.items():
        for _ in range(per_region):
            suffix = "".join(rng.choice(list("aeioubdgklmnprst"), size=2))
            names.append(f"{r.capitalize()}{r}{suffix}")
            latlon.append((lat + rng.normal(0, 2), lon + rng.normal(0, 2)))
            texts.append(f"{names[-1]}, {r} province, {r.upper()}land")
    latlon_a = np.array(latlon)
    test = np.array([i for i in range(len(names)) if i % per_region < test_per_region])
    train = np.array([i for i in range(len(names)) if i % per_region >= test_per_region])
    order = rng.permutation(len(test))
    test = test[order]
    gallery = GeoGallery([f"g{i}" for i in train], [names[i] for i in train], latlon_a[train],
                         [texts[i] for i in train])
    queries = GeoQueries([f"g{i}" for i in test], [names[i] for i in test], latlon_a[test])
    return GeoSplit(gallery, queries, "planted")


class TrigramEncoder:
    """Hashed character trigrams, 64-d, unit rows: names sharing a prefix are similar."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), np.float32)
        for i, t in enumerate(texts):
            t = f"  {t.lower()} "
            for j in range(len(t) - 2):
                h = int(hashlib.md5(t[j:j + 3].encode()).hexdigest()[:8], 16)
                out[i, h % 64] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@dataclass
class FakeGeoLLM:
    """The Backend protocol: RAG prompt -> its first similar reference as JSON; zero-shot -> no coordinates."""

    name: str = "fake-geo"
    fingerprint: str = "fake-geo-v1"
    calls: int = 0
    images: int = 0
    batches: list[int] = field(default_factory=list)  # rows per complete() call

    def complete(self, rows: Sequence) -> list[Completion]:
        self.batches.append(len(rows))
        out = []
        for row in rows:
            self.calls += 1
            content = row.prompt[0]["content"] if not isinstance(row.prompt, str) else row.prompt
            text = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
            if not isinstance(content, str):
                self.images += sum(p.get("type") == "image_url" for p in content)
            m = re.search(r"similar (?:place names|images): \[\[(-?[\d.]+), (-?[\d.]+)\]", text)
            if m:
                out.append(Completion(f'{{"latitude": {m.group(1)}, "longitude": {m.group(2)}}}', 5, 12))
            else:
                out.append(Completion("I cannot tell where that is.", 5, 7))
        return out
