"""A CLIP-style image tower as G3's query encoder (frozen; CLIP ViT-L/14 in the paper).

:meth:`ImageTower.from_pretrained` reads a local transformers CLIP folder (``CLIPModel`` or
``CLIPVisionModelWithProjection`` weights, e.g. a download of ``openai/clip-vit-large-patch14``)
for users who have the weights; nothing is downloaded. :meth:`ImageTower.untrained` builds a small
randomly initialised tower of the same kind, which is what the tests use (no image weights are
reachable offline): it checks the mechanics (files -> pixels -> unit vectors -> database), not
the quality. Pixels are prepared as CLIP's processor does: shorter side resized (bicubic) to the
tower's size, centre crop, CLIP's mean and std.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recwise.errors import CheckpointError, DataError, DependencyError

__all__ = ["CLIP_MEAN", "CLIP_STD", "ImageTower", "load_pixels"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_pixels(paths: Sequence[str | Path], size: int) -> torch.Tensor:
    """Image files -> (N, 3, size, size) float32, CLIP-normalised; a missing or unreadable file is a DataError."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DependencyError("image queries need pillow: pip install pillow") from None
    out = np.empty((len(paths), 3, size, size), dtype=np.float32)
    mean, std = np.array(CLIP_MEAN, np.float32)[:, None, None], np.array(CLIP_STD, np.float32)[:, None, None]
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as src:
                rgb = src.convert("RGB")
            scale = size / min(rgb.size)
            w, h = max(size, round(rgb.width * scale)), max(size, round(rgb.height * scale))
            rgb = rgb.resize((w, h), Image.Resampling.BICUBIC)
            left, top = (w - size) // 2, (h - size) // 2
            arr = np.asarray(rgb.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
        except FileNotFoundError:
            raise DataError(f"{p}: image not found") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{p}: not a readable image ({exc})") from None
        out[i] = (arr.transpose(2, 0, 1) - mean) / std
    return torch.from_numpy(out)


class ImageTower:
    """``encode(image paths) -> (N, d)`` unit rows through a transformers CLIP vision tower + projection."""

    def __init__(self, model: Any, *, image_size: int, batch_size: int = 32) -> None:
        self.model = model.eval()
        self.image_size = image_size
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, path: str | Path, *, batch_size: int = 32) -> ImageTower:
        try:
            from transformers import CLIPVisionModelWithProjection
        except ImportError:
            raise DependencyError("the image tower needs transformers: pip install 'recwise[llm]'") from None
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"{path}: no CLIP model folder (config.json + weights); pass a local download")
        model = CLIPVisionModelWithProjection.from_pretrained(str(path))
        return cls(model, image_size=int(model.config.image_size), batch_size=batch_size)  # type: ignore[arg-type]

    @classmethod
    def untrained(cls, *, image_size: int = 32, width: int = 64, layers: int = 2, projection: int = 48,
                  seed: int = 0) -> ImageTower:
        """A small random CLIP vision tower (for tests of the mechanics)."""
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        torch.manual_seed(seed)
        cfg = CLIPVisionConfig(image_size=image_size, patch_size=8, hidden_size=width, intermediate_size=2 * width,
                               num_hidden_layers=layers, num_attention_heads=4, projection_dim=projection)
        return cls(CLIPVisionModelWithProjection(cfg), image_size=image_size)

    @torch.no_grad()
    def encode(self, paths: Sequence[str | Path]) -> np.ndarray:
        parts = []
        for i in range(0, len(paths), self.batch_size):
            pixels = load_pixels(paths[i:i + self.batch_size], self.image_size)
            emb = self.model(pixel_values=pixels).image_embeds
            parts.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
