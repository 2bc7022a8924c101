"""recwise.data.item_text: the one MovieLens-100K u.item reader, read PAD's way and LLMERS' way.

The lines are u.item's own (latin-1 bytes included). On the whole file the two ways differ on 198
of 1,682 items: PAD takes the release date's year and keeps a title's own differing year, LLMERS
splits the title's year off; LLMERS decodes as lossy UTF-8 (as its earlier reader did).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recwise.data.item_text import ItemMeta, item_text_file, item_texts, read_item_meta, read_u_item
from recwise.errors import DataError

LINES = [
    b"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)"
    b"|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0",
    b"10|Richard III (1995)|22-Jan-1996||http://us.imdb.com/M/title-exact?Richard%20III%20(1995)"
    b"|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0",
    b"267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
    b"543|Mis\xe9rables, Les (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Mis%E9rables%2C%20Les%20%281995%29"
    b"|0|0|0|0|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0",
]


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    (tmp_path / "u.item").write_bytes(b"\n".join(LINES) + b"\n")
    return tmp_path


def test_pad_reads_the_release_year_and_latin1(raw: Path) -> None:
    got = read_u_item(raw / "u.item", year_from="release", encoding="latin-1")
    assert got["1"] == ItemMeta("Toy Story", "1995", ("Animation", "Children's", "Comedy"))
    assert got["10"] == ItemMeta("Richard III (1995)", "1996", ("Drama", "War"))
    assert got["267"] == ItemMeta("unknown", "", ())  # the 'unknown' genre flag is no genre
    assert got["543"].title == "Misérables, Les"
    path, reader = item_text_file("ml-100k", raw)
    assert path.name == "u.item"
    assert reader(path)["10"] == "Richard III (1995) 1996 Drama War"
    texts, missing = item_texts("ml-100k", raw, ["[PAD]", "543", "1", "999"])
    assert texts == ["Misérables, Les 1995 Drama Musical", "Toy Story 1995 Animation Children's Comedy", "item 999"]
    assert missing == 1


def test_llmers_reads_the_title_year_and_lossy_utf8(raw: Path) -> None:
    got = read_item_meta("ml-100k", raw)
    assert got == read_u_item(raw / "u.item", year_from="title", encoding="utf8-lossy")
    assert got["10"] == ItemMeta("Richard III", "1995", ("Drama", "War"))
    assert got["10"].text() == "Richard III (1995). Genres: Drama, War."
    assert got["267"] == ItemMeta("unknown", "", ())
    assert got["543"].title == "Mis\ufffdrables, Les"


def test_errors(raw: Path, tmp_path: Path) -> None:
    (raw / "bad.item").write_text("1|Toy Story (1995)|01-Jan-1995\n")
    with pytest.raises(DataError, match="line 1 has 3 fields"):
        read_u_item(raw / "bad.item")
    with pytest.raises(DataError, match="no item text file for dataset 'ml-1m'"):
        item_text_file("ml-1m", raw)
    with pytest.raises(DataError, match="no item text reader"):
        read_item_meta("ml-1m", raw)
