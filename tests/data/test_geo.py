"""GeoNames offline set (whole places held out) and the IM2GPS3k / YFCC4k / MP16-Pro layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recwise.data.geo import geonames_split, latin_name, read_image_benchmark, read_mp16_pro
from recwise.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def split():  # noqa: ANN201
    return geonames_split(test_fraction=0.05, split_seed=0, query="alias")


def test_whole_places_are_held_out(split) -> None:  # noqa: ANN001
    gallery_ids = set(split.gallery.ids)
    assert len(split.queries) == round(0.05 * 34006) and len(split.gallery) == 34006 - len(split.queries)
    assert not gallery_ids & set(split.queries.ids)  # no held-out place is in the gallery under any name
    assert split.gallery.latlon.shape == (len(split.gallery), 2)
    # texts are "{city}, {region}, {country}"
    paris = split.gallery.texts[split.gallery.names.index("Paris")] if "Paris" in split.gallery.names else None
    assert paris is None or paris == "Paris, Ile-de-France, France"
    # alias queries are Latin-script alternate names (or the name itself when a place has none)
    names = geonames_split(test_fraction=0.05, split_seed=0, query="name").queries.texts
    aliases = [a for a, n in zip(split.queries.texts, names) if a != n]
    assert len(aliases) > 0.7 * len(names) and all(latin_name(a) for a in aliases)


def test_the_split_is_a_function_of_its_seed(split) -> None:  # noqa: ANN001
    again = geonames_split(test_fraction=0.05, split_seed=0, query="name")
    other = geonames_split(test_fraction=0.05, split_seed=1, query="name")
    assert again.queries.ids == split.queries.ids
    assert again.queries.texts != split.queries.texts  # names, not aliases
    assert other.queries.ids != split.queries.ids
    np.testing.assert_array_equal(again.queries.latlon, split.queries.latlon)
    assert again.queries.head(10).ids == again.queries.ids[:10]


def test_latin_name_rules() -> None:
    assert latin_name("São Paulo") and latin_name("Saint-Étienne") and latin_name("L'Aquila")
    assert not latin_name("ALV") and not latin_name("Москва") and not latin_name("東京")


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="min_population"):
        geonames_split(min_population=2000)
    with pytest.raises(ConfigError, match="test_fraction"):
        geonames_split(test_fraction=1.5)
    with pytest.raises(ConfigError, match="query"):
        geonames_split(query="nickname")


def _benchmark(root: Path, rows: str, images: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Path:
    (root / "images").mkdir(parents=True)
    for name in images:
        (root / "images" / name).write_bytes(b"\xff\xd8")
    (root / "im2gps3k_places365.csv").write_text(rows)
    return root


def test_image_benchmark_layout(tmp_path: Path) -> None:
    root = _benchmark(tmp_path / "im2gps3k", "IMG_ID,LAT,LON,S3_Label\na.jpg,48.85,2.35,x\nb.jpg,-33.9,151.2,y\n")
    q = read_image_benchmark(root)
    assert q.ids == ["a.jpg", "b.jpg"] and q.images == [root / "images" / "a.jpg", root / "images" / "b.jpg"]
    np.testing.assert_allclose(q.latlon, [[48.85, 2.35], [-33.9, 151.2]])


@pytest.mark.parametrize(("rows", "message"), [
    ("IMG_ID,LAT,LON\na.jpg,48.85,2.35\nb.jpg,95.0,2.0\n", r"im2gps3k_places365\.csv:3: LAT = 95\.0 is outside"),
    ("IMG_ID,LAT,LON\na.jpg,48.85,-181\n", r"im2gps3k_places365\.csv:2: LON = -181\.0 is outside \[-180, 180\]"),
    ("IMG_ID,LAT,LON\na.jpg,north,2\n", r":2: LAT is 'north', not a number"),
    ("IMG_ID,city\na.jpg,Paris\n", r"im2gps3k_places365\.csv:1: no column LAT, LON"),
    ("IMG_ID,LAT,LON\nc.jpg,1,2\n", r"im2gps3k_places365\.csv:2: image .*c\.jpg not found"),
])
def test_bad_benchmark_files_are_one_line_naming_file_and_row(tmp_path: Path, rows: str, message: str) -> None:
    root = _benchmark(tmp_path / "b", rows)
    with pytest.raises(DataError, match=message) as err:
        read_image_benchmark(root)
    assert "\n" not in str(err.value)


def test_mp16_pro_texts(tmp_path: Path) -> None:
    p = tmp_path / "MP16_Pro_filtered.csv"
    p.write_text("IMG_ID,LAT,LON,city,state,country\n1.jpg,48.85,2.35,Paris,Ile-de-France,France\n"
                 "2.jpg,10,20,,Kano,Nigeria\n")
    g = read_mp16_pro(p)
    assert g.texts == ["Paris, Ile-de-France, France", "Kano, Nigeria"] and len(g) == 2
    p.write_text("IMG_ID,LAT,LON,city,state,country\n1.jpg,48.85,200,Paris,IdF,France\n")
    with pytest.raises(DataError, match=r"MP16_Pro_filtered\.csv:2: LON"):
        read_mp16_pro(p)


def test_image_split_checks_the_database_images(tmp_path: Path) -> None:
    from recwise.data.geo import image_split

    bench = _benchmark(tmp_path / "yfcc4k", "IMG_ID,LAT,LON\na.jpg,48.85,2.35\n")
    db = tmp_path / "mp16" / "MP16_Pro_filtered.csv"
    (db.parent / "images").mkdir(parents=True)
    (db.parent / "images" / "1.jpg").write_bytes(b"\xff\xd8")
    db.write_text("IMG_ID,LAT,LON,city,state,country\n1.jpg,48.85,2.35,Paris,Ile-de-France,France\n"
                  "2.jpg,10,20,,Kano,Nigeria\n")
    with pytest.raises(DataError, match=r"MP16_Pro_filtered\.csv:3: image .*2\.jpg not found") as err:
        image_split("yfcc4k", bench, db)
    assert "\n" not in str(err.value)
    (db.parent / "images" / "2.jpg").write_bytes(b"\xff\xd8")
    split = image_split("yfcc4k", bench, db)
    assert split.label == "yfcc4k" and split.gallery.names == [str(db.parent / "images" / f"{i}.jpg") for i in (1, 2)]
    assert split.queries.images == [bench / "images" / "a.jpg"]
    with pytest.raises(ConfigError, match="unknown image benchmark"):
        image_split("im2gps", bench, db)
