"""Retrieval collections: a corpus, its queries and graded judgments, as columnar arrays.

A :class:`Collection` holds

- the corpus: ``doc_ids``, ``titles``, ``texts`` (each a :class:`TextColumn`: one UTF-8 byte
  buffer plus offsets, so a million documents are two arrays, not a million Python objects);
- the queries: ``query_ids``, ``query_texts``;
- the judgments: ``qrel_query`` / ``qrel_doc`` (int32 row indices into the queries and the corpus),
  ``qrel_grade`` (the grade as the file writes it) and ``qrel_gain`` (the gain the metrics use).

Two layouts are read:

- **SMART** (Cranfield, CISI): ``.I`` / ``.T`` / ``.W`` ... records. Cranfield's ``cran.qry`` numbers
  its queries 1, 2, 4, 8, 9, ... while ``cranqrel`` numbers them 1..225 in file order; the qrels'
  number is the query's *position*, so query ids are positions (``1`` .. ``225``) for both files.
- **BEIR**: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``),
  ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``, a header line).

Grade -> gain (:func:`gain_of`), one rule per source, written down in docs/retrieval.md:

- Cranfield: codes 1 (complete answer) .. 4 (minimum interest) give gains 4 .. 1 (``5 - code``);
  code -1 (and 5, "no interest") gives 0: not relevant.
- CISI: every listed pair is relevant, gain 1 (the file has no grades).
- BEIR: the score as written; 0 and negative scores are not relevant (gain 0).

Judgments with gain 0 are kept in the arrays (``qrel_grade`` tells them apart) but metrics count
only gain >= 1. Prepared collections are cached under ``$RECWISE_HOME/prepared/retrieval-<name>-<key>/``
(key: a hash of the raw files and the options), written into a temporary folder and renamed into
place, so a bad file never leaves a half-written entry. Every malformed input is a DataError of one
line naming the file and line.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recwise.data.cache import cache_key, default_root
from recwise.errors import ConfigError, DataError
from recwise.results import usual_modes

__all__ = [
    "BEIR_DATASETS",
    "Collection",
    "RETRIEVAL_DATASETS",
    "RetrievalSource",
    "TextColumn",
    "download_retrieval",
    "gain_of",
    "load_collection",
    "read_beir",
    "read_smart",
    "retrieval_source",
]

FORMAT_VERSION = 1
Layout = Literal["smart", "beir"]


# ---------------------------------------------------------------------------------------------
# columns


class TextColumn:
    """Strings stored as one UTF-8 ``uint8`` buffer and ``int64`` offsets (``len + 1`` of them).

    Examples
    --------
    >>> col = TextColumn.from_strings(["a", "bé", ""])
    >>> len(col), col[1], col.to_list()
    (3, 'bé', ['a', 'bé', ''])
    """

    __slots__ = ("data", "offsets")

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets

    @classmethod
    def from_strings(cls, strings: Sequence[str]) -> TextColumn:
        encoded = [s.encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return bytes(self.data[self.offsets[i]: self.offsets[i + 1]]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def to_list(self) -> list[str]:
        blob = bytes(self.data)
        off = self.offsets.tolist()
        return [blob[off[i]: off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]

    def take(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self[int(i)] for i in rows]


@dataclass(frozen=True)
class Collection:
    """A retrieval collection (see the module docstring for the fields)."""

    name: str
    doc_ids: TextColumn
    titles: TextColumn
    texts: TextColumn
    query_ids: TextColumn
    query_texts: TextColumn
    qrel_query: np.ndarray  # int32, row of query_ids
    qrel_doc: np.ndarray  # int32, row of doc_ids
    qrel_grade: np.ndarray  # int16, the grade as written in the file
    qrel_gain: np.ndarray  # int16, the gain metrics use (0: not relevant)
    meta: dict[str, Any]

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    def doc_texts(self) -> list[str]:
        """Title and text of every document, joined by a blank line when both exist (what retrievers index)."""
        return [f"{t}\n\n{x}" if t and x else (t or x) for t, x in zip(self.titles.to_list(), self.texts.to_list())]

    def judged_queries(self) -> np.ndarray:
        """Sorted rows of the queries with at least one relevant (gain >= 1) judgment."""
        return np.unique(self.qrel_query[self.qrel_gain > 0]).astype(np.int64)

    def relevant(self) -> dict[int, dict[int, int]]:
        """``{query row: {doc row: gain}}`` for gain >= 1."""
        out: dict[int, dict[int, int]] = {}
        keep = self.qrel_gain > 0
        for q, d, g in zip(self.qrel_query[keep].tolist(), self.qrel_doc[keep].tolist(), self.qrel_gain[keep].tolist()):
            out.setdefault(q, {})[d] = g
        return out

    def qrels_dict(self, queries: Sequence[int] | np.ndarray | None = None) -> dict[str, dict[str, int]]:
        """``{query id: {doc id: gain}}`` (gain >= 1) for the given query rows (default all): what IR libraries take."""
        wanted = None if queries is None else {int(q) for q in queries}
        qids = self.query_ids.to_list()
        dids = self.doc_ids
        out: dict[str, dict[str, int]] = {}
        for q, docs in self.relevant().items():
            if wanted is None or q in wanted:
                out[qids[q]] = {dids[d]: g for d, g in docs.items()}
        return out


# ---------------------------------------------------------------------------------------------
# grades -> gains


def gain_of(rule: str, grade: int) -> int:
    """The gain of one judgment under ``rule`` (``cranfield``, ``binary`` or ``graded``); see the module docstring."""
    if rule == "cranfield":
        return 5 - grade if 1 <= grade <= 4 else 0
    if rule == "binary":
        return 1
    if rule == "graded":
        return max(grade, 0)
    raise ConfigError(f"unknown gain rule {rule!r}; expected 'cranfield', 'binary' or 'graded'")


# ---------------------------------------------------------------------------------------------
# SMART layout


def _smart_records(path: Path, keep: Sequence[str]) -> list[tuple[str, dict[str, str], int]]:
    """``(id, {field: text}, line)`` per ``.I`` record; a field given twice is appended (Cranfield has such records)."""
    _require_file(path)
    records: list[tuple[str, dict[str, str], int]] = []
    field = ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith(".I"):
                parts = line.split()
                if len(parts) != 2:
                    raise DataError(f"{path}:{lineno}: '.I' line must carry one id; got {line.strip()!r}")
                records.append((parts[1], {}, lineno))
                field = ""
            elif len(line) >= 2 and line[0] == "." and line[1].isalpha() and line[2:].strip() == "":
                if not records:
                    raise DataError(f"{path}:{lineno}: field {line.strip()} before the first '.I' line")
                field = line[1]
            elif records and field in keep:
                fields = records[-1][1]
                fields[field] = (fields.get(field, "") + " " + line.strip()).strip()
            elif not records and line.strip():
                raise DataError(f"{path}:{lineno}: text before the first '.I' line; not a SMART file")
    if not records:
        raise DataError(f"{path}: no '.I' records; the corpus is empty")
    return records


@dataclass(frozen=True)
class _SmartFiles:
    docs: str
    queries: str
    qrels: str
    gain_rule: str
    qrels_by_position: bool  # Cranfield: the qrels number queries by position, not by their .I id


def read_smart(raw_dir: Path, files: _SmartFiles, name: str) -> Collection:
    """Read a SMART-layout collection (Cranfield, CISI) from ``raw_dir``."""
    docs = _smart_records(raw_dir / files.docs, keep=("T", "W"))
    queries = _smart_records(raw_dir / files.queries, keep=("W",))
    doc_ids = [str(int(i)) if i.isdigit() else i for i, _, _ in docs]
    _unique(doc_ids, raw_dir / files.docs, "document")
    if files.qrels_by_position:
        query_ids = [str(k + 1) for k in range(len(queries))]
    else:
        query_ids = [str(int(i)) if i.isdigit() else i for i, _, _ in queries]
    _unique(query_ids, raw_dir / files.queries, "query")
    doc_row = {d: k for k, d in enumerate(doc_ids)}
    query_row = {q: k for k, q in enumerate(query_ids)}
    qq, qd, qg = [], [], []
    path = raw_dir / files.qrels
    _require_file(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 3:
                raise DataError(f"{path}:{lineno}: qrels line needs query, document and grade columns; "
                                f"got {len(parts)} column(s): {line.strip()!r}")
            q, d = str(int(parts[0])) if parts[0].isdigit() else parts[0], parts[1]
            d = str(int(d)) if d.isdigit() else d
            try:
                grade = int(float(parts[2]))
            except ValueError:
                raise DataError(f"{path}:{lineno}: grade {parts[2]!r} is not a number") from None
            _judged(q, d, query_row, doc_row, path, lineno)
            qq.append(query_row[q])
            qd.append(doc_row[d])
            qg.append(grade)
    titles = [f.get("T", "") for _, f, _ in docs]
    texts = [f.get("W", "") for _, f, _ in docs]
    # Cranfield's .W repeats the title as its first sentence: drop that copy so the title is not counted twice
    texts = [x[len(t):].lstrip() if t and x.startswith(t) else x for t, x in zip(titles, texts)]
    qtexts = [f.get("W", "") for _, f, _ in queries]
    return _collection(name, doc_ids, titles, texts, query_ids, qtexts, qq, qd, qg, files.gain_rule,
                       {"layout": "smart"})


# ---------------------------------------------------------------------------------------------
# BEIR layout


def _jsonl(path: Path, fields: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    _require_file(path)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict) or "_id" not in obj:
                raise DataError(f"{path}:{lineno}: expected a JSON object with an '_id' field")
            for f in fields:
                if f in obj and not isinstance(obj[f], str):
                    raise DataError(f"{path}:{lineno}: field '{f}' must be a string; got {type(obj[f]).__name__}")
            yield lineno, obj


def read_beir(raw_dir: Path, name: str, split: str = "test") -> Collection:
    """Read a BEIR-layout folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""
    doc_ids, titles, texts = [], [], []
    for _, obj in _jsonl(raw_dir / "corpus.jsonl", ("title", "text")):
        doc_ids.append(str(obj["_id"]))
        titles.append(obj.get("title") or "")
        texts.append(obj.get("text") or "")
    if not doc_ids:
        raise DataError(f"{raw_dir / 'corpus.jsonl'}: the corpus is empty")
    _unique(doc_ids, raw_dir / "corpus.jsonl", "document")
    query_ids, qtexts = [], []
    for _, obj in _jsonl(raw_dir / "queries.jsonl", ("text",)):
        query_ids.append(str(obj["_id"]))
        qtexts.append(obj.get("text") or "")
    _unique(query_ids, raw_dir / "queries.jsonl", "query")
    path = raw_dir / "qrels" / f"{split}.tsv"
    if not path.is_file():
        have = sorted(p.stem for p in (raw_dir / "qrels").glob("*.tsv")) if (raw_dir / "qrels").is_dir() else []
        raise DataError(f"qrels file {path} does not exist (qrels splits here: {have or 'none'}); "
                        f"choose one with --set data.split=<name>")
    doc_row = {d: k for k, d in enumerate(doc_ids)}
    query_row = {q: k for k, q in enumerate(query_ids)}
    qq, qd, qg = [], [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if lineno == 1 and parts[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue  # the header
            if len(parts) < 3:
                raise DataError(f"{path}:{lineno}: qrels line needs query-id, corpus-id and score (tab-separated); "
                                f"got {len(parts)} column(s)")
            q, d = parts[0].strip(), parts[1].strip()
            try:
                grade = int(float(parts[2]))
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {parts[2]!r} is not a number") from None
            _judged(q, d, query_row, doc_row, path, lineno)
            qq.append(query_row[q])
            qd.append(doc_row[d])
            qg.append(grade)
    return _collection(name, doc_ids, titles, texts, query_ids, qtexts, qq, qd, qg, "graded",
                       {"layout": "beir", "split": split})


# ---------------------------------------------------------------------------------------------
# shared checks


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"raw file {path} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"raw file {path} is empty")


def _unique(ids: list[str], path: Path, what: str) -> None:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise DataError(f"{path}: {what} id {dup!r} appears twice")


def _judged(q: str, d: str, query_row: dict[str, int], doc_row: dict[str, int], path: Path, lineno: int) -> None:
    if q not in query_row:
        raise DataError(f"{path}:{lineno}: judgment names unknown query {q!r}")
    if d not in doc_row:
        raise DataError(f"{path}:{lineno}: judgment names unknown document {d!r}")


def _collection(name: str, doc_ids: list[str], titles: list[str], texts: list[str], query_ids: list[str],
                qtexts: list[str], qq: list[int], qd: list[int], qg: list[int], rule: str,
                meta: dict[str, Any]) -> Collection:
    gains = [gain_of(rule, g) for g in qg]
    return Collection(
        name, TextColumn.from_strings(doc_ids), TextColumn.from_strings(titles), TextColumn.from_strings(texts),
        TextColumn.from_strings(query_ids), TextColumn.from_strings(qtexts),
        np.asarray(qq, dtype=np.int32), np.asarray(qd, dtype=np.int32), np.asarray(qg, dtype=np.int16),
        np.asarray(gains, dtype=np.int16), {**meta, "gain_rule": rule})


# ---------------------------------------------------------------------------------------------
# the sources recwise knows


@dataclass(frozen=True)
class RetrievalSource:
    """Where a collection comes from. ``urls``: what ``recwise data download`` fetches (empty with ``manual``)."""

    name: str
    description: str
    layout: Layout
    urls: tuple[str, ...] = ()
    smart: _SmartFiles | None = None
    manual: str = ""

    def raw_files(self, raw_dir: Path, split: str) -> list[Path]:
        if self.layout == "smart":
            assert self.smart is not None
            names = [self.smart.docs, self.smart.queries, self.smart.qrels]
            return [raw_dir / n for n in names]
        return [raw_dir / "corpus.jsonl", raw_dir / "queries.jsonl", raw_dir / "qrels" / f"{split}.tsv"]


_GLASGOW = "http://ir.dcs.gla.ac.uk/resources/test_collections"
_BEIR = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"
BEIR_DATASETS = ("arguana", "climate-fever", "dbpedia-entity", "fever", "fiqa", "hotpotqa", "msmarco", "nfcorpus",
                 "nq", "quora", "scidocs", "scifact", "trec-covid", "webis-touche2020")
_BEIR_LOGIN = ("bioasq", "signal1m", "trec-news", "robust04")

RETRIEVAL_DATASETS: dict[str, RetrievalSource] = {
    "cranfield": RetrievalSource(
        "cranfield", "Cranfield 1400: aeronautics abstracts, 225 queries, graded judgments", "smart",
        (f"{_GLASGOW}/cran/cran.tar.gz",),
        smart=_SmartFiles("cran.all.1400", "cran.qry", "cranqrel", "cranfield", qrels_by_position=True)),
    "cisi": RetrievalSource(
        "cisi", "CISI: 1460 library-science abstracts, 112 queries (76 judged), binary judgments", "smart",
        (f"{_GLASGOW}/cisi/cisi.tar.gz",),
        smart=_SmartFiles("CISI.ALL", "CISI.QRY", "CISI.REL", "binary", qrels_by_position=False)),
    **{n: RetrievalSource(n, f"BEIR {n}", "beir", (f"{_BEIR}/{n}.zip",)) for n in BEIR_DATASETS},
    **{n: RetrievalSource(n, f"BEIR {n} (not redistributable)", "beir", manual=(
        f"BEIR's '{n}' is not redistributed: build it with the BEIR instructions "
        f"(https://github.com/beir-cellar/beir/wiki/Datasets-available) and pass the folder with --data-dir"))
       for n in _BEIR_LOGIN},
}


def retrieval_source(name: str, data_dir: str | os.PathLike[str] | None = None) -> RetrievalSource:
    """The source of ``name``; any other name with a ``data_dir`` is read as a BEIR-layout folder."""
    if name in RETRIEVAL_DATASETS:
        return RETRIEVAL_DATASETS[name]
    if data_dir is not None:
        return RetrievalSource(name, f"BEIR-layout folder {data_dir}", "beir")
    from recwise.registry import did_you_mean

    raise ConfigError(f"unknown retrieval dataset {name!r}{did_you_mean(name, RETRIEVAL_DATASETS)}; "
                      f"pass --data-dir to read any BEIR-layout folder")


# ---------------------------------------------------------------------------------------------
# the cache


_ARRAYS = ("qrel_query", "qrel_doc", "qrel_grade", "qrel_gain")
_TEXTS = ("doc_ids", "titles", "texts", "query_ids", "query_texts")


def _save(folder: Path, col: Collection) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for name in _TEXTS:
            tc: TextColumn = getattr(col, name)
            np.save(tmp / f"{name}.data.npy", tc.data, allow_pickle=False)
            np.save(tmp / f"{name}.offsets.npy", tc.offsets, allow_pickle=False)
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(col, name), allow_pickle=False)
        meta = {**col.meta, "name": col.name, "format": FORMAT_VERSION}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")  # last: complete
        usual_modes(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            shutil.rmtree(tmp if (folder / "meta.json").exists() else folder, ignore_errors=True)
            if tmp.exists():
                os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(folder: Path) -> Collection:
    current = folder / "meta.json"
    try:
        meta = json.loads(current.read_text(encoding="utf-8"))
        texts: dict[str, Any] = {}
        for name in _TEXTS:
            current = folder / f"{name}.data.npy"
            data = np.load(current, mmap_mode="r", allow_pickle=False)
            current = folder / f"{name}.offsets.npy"
            texts[name] = TextColumn(data, np.load(current, allow_pickle=False))
        arrays: dict[str, Any] = {}
        for name in _ARRAYS:
            current = folder / f"{name}.npy"
            arrays[name] = np.load(current, allow_pickle=False)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"prepared collection file {current} is unreadable ({str(exc).splitlines()[0][:100]}); "
                        f"delete {folder} to rebuild it") from None
    name = meta.pop("name")
    meta.pop("format", None)
    return Collection(name, **texts, **arrays, meta=meta)


def load_collection(name: str, data_dir: str | os.PathLike[str] | None = None, *, split: str = "test",
                    root: Path | None = None, use_cache: bool = True) -> Collection:
    """Read collection ``name`` (from ``data_dir`` or ``$RECWISE_HOME/raw/<name>``), through the cache.

    Parameters
    ----------
    name : ``cranfield``, ``cisi``, a BEIR name, or any name with ``data_dir`` (read as BEIR layout).
    data_dir : the raw folder; default ``$RECWISE_HOME/raw/<name>``.
    split : BEIR only: which ``qrels/<split>.tsv`` holds the judgments.
    root : cache root (default ``$RECWISE_HOME``); ``use_cache=False`` reads the raw files every time.
    """
    src = retrieval_source(name, data_dir)
    raw_dir = Path(data_dir) if data_dir is not None else default_root() / "raw" / name
    if not raw_dir.is_dir():
        raise DataError(f"no raw files for retrieval dataset '{name}': folder {raw_dir} does not exist; "
                        f"run `recwise data download {name}` or pass --data-dir")
    files = src.raw_files(raw_dir, split)
    for f in files:
        if not f.is_file():
            raise DataError(f"raw file {f} does not exist (dataset '{name}', {src.layout} layout)")
    key = cache_key(files, {"retrieval": name, "layout": src.layout, "split": split, "format": FORMAT_VERSION})
    folder = (root or default_root()) / "prepared" / f"retrieval-{name}-{key}"
    if use_cache and (folder / "meta.json").exists():
        return _load(folder)
    if src.layout == "smart":
        assert src.smart is not None
        col = read_smart(raw_dir, src.smart, name)
    else:
        col = read_beir(raw_dir, name, split)
    col = Collection(**{**col.__dict__, "meta": {**col.meta, "key": key, "raw_dir": str(raw_dir)}})
    if use_cache:
        _save(folder, col)
        return _load(folder)
    return col


# ---------------------------------------------------------------------------------------------
# download


def download_retrieval(name: str, dest: Path, *, quiet: bool = False) -> Path:
    """Fetch the raw files of a retrieval collection into ``dest`` (nothing is kept from a failed download)."""
    src = retrieval_source(name)
    if src.manual:
        raise DataError(src.manual)
    if all(f.is_file() for f in src.raw_files(dest, "test")):
        if not quiet:
            print(f"{name}: raw files already in {dest}", flush=True)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
    try:
        for url in src.urls:
            target = staging / url.rsplit("/", 1)[-1]
            if not quiet:
                print(f"downloading {url}", flush=True)
            try:
                with urllib.request.urlopen(url, timeout=120) as response, open(target, "wb") as out:
                    shutil.copyfileobj(response, out, 1 << 20)
            except (urllib.error.URLError, OSError) as exc:
                raise DataError(f"cannot download {url}: {exc}; check the connection, or fetch it by hand "
                                f"and unpack it into {dest}") from None
            _unpack(target, staging / "unpacked", name)
        unpacked = staging / "unpacked"
        for path in sorted(unpacked.rglob("*")):
            if path.is_file():
                final = dest / path.relative_to(unpacked)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    missing = [str(f) for f in src.raw_files(dest, "test") if not f.is_file()]
    if missing:
        raise DataError(f"the download of '{name}' lacks {missing}")
    return dest


def _unpack(archive: Path, out: Path, name: str) -> None:
    """Unpack members flat for SMART tarballs; BEIR zips keep their layout below the ``<name>/`` folder."""
    import tarfile

    out.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                parts = Path(info.filename).parts
                if info.is_dir() or "__MACOSX" in parts or ".." in parts:
                    continue
                rel = Path(*parts[1:]) if parts and parts[0] == name and len(parts) > 1 else Path(*parts)
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as fh, open(out / rel, "wb") as dst:
                    shutil.copyfileobj(fh, dst)
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile():
                    member_fh = tf.extractfile(member)
                    if member_fh is not None:
                        with member_fh, open(out / Path(member.name).name, "wb") as dst:
                            shutil.copyfileobj(member_fh, dst)
