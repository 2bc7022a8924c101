"""The image tower's mechanics on small generated images with an untrained CLIP tower (no weights offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recwise.errors import CheckpointError, DataError
from recwise.models.geo.image import ImageTower, load_pixels


def _images(folder: Path, colours: list[tuple[int, int, int]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, c in enumerate(colours):
        p = folder / f"img{i}.png"
        Image.new("RGB", (48 + 8 * i, 40), c).save(p)
        paths.append(p)
    return paths


def test_pixels_are_center_cropped_and_clip_normalised(tmp_path: Path) -> None:
    (p,) = _images(tmp_path, [(255, 0, 0)])
    px = load_pixels([p], 32)
    assert px.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(px[0, :, 5, 5].numpy(), [(1 - 0.48145466) / 0.26862954, (0 - 0.4578275) / 0.26130258,
                                                         (0 - 0.40821073) / 0.27577711], atol=1e-4)


def test_untrained_tower_gives_unit_vectors_that_depend_on_the_image(tmp_path: Path) -> None:
    paths = _images(tmp_path, [(255, 0, 0), (0, 0, 255), (255, 0, 0)])
    tower = ImageTower.untrained()
    v = tower.encode(paths)
    assert v.shape == (3, 48)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[2] > v[0] @ v[1]  # same colour (other size) closer than another colour


def test_missing_or_broken_images_and_weights_are_one_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jpg: image not found"):
        load_pixels([tmp_path / "nope.jpg"], 32)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"bad\.jpg: not a readable image"):
        load_pixels([bad], 32)
    with pytest.raises(CheckpointError, match="no CLIP model folder"):
        ImageTower.from_pretrained(tmp_path / "clip-vit-large-patch14")
