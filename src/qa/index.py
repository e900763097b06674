"""The on-disk index: a self-describing folder, built beside the old one and swapped in.

Layout of ``INDEX/``::

    CURRENT            name of the generation in use (replaced atomically at the end of a build)
    gen-<n>/           one complete index
      manifest.json    format version, model, chunk settings, per-file hashes and reports
      meta.sqlite      documents (with their text), sentences and chunks, all as offsets
      chunks.npy       chunk vectors (float32), row i = chunk id i = FAISS id i
      sentences.npy    sentence vectors (float16), pooled from the chunk's token vectors
      dense.faiss      the FAISS index over chunks.npy
      bm25/            the bm25s index over the same chunks
    .lock              held by the build that is writing

A build that dies leaves ``CURRENT`` pointing at the previous, complete generation.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFolderError, IndexLockedError, IngestError, QAError
from .lexical import Lexical
from .types import Document, FileReport

FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
META = "meta.sqlite"
CHUNK_VECTORS = "chunks.npy"
SENTENCE_VECTORS = "sentences.npy"
DENSE = "dense.faiss"
LEXICAL = "bm25"
REBUILD_HINT = "rebuild it with `qa index --rebuild`"

SentenceSpan = tuple[int, int, int | None, int]  # start, end, page, tokens
ChunkSpan = tuple[int, int, int | None, int, int, int]  # start, end, page, first, last sentence, tokens

SCHEMA = """
CREATE TABLE documents (row INTEGER PRIMARY KEY, doc_id TEXT UNIQUE, source TEXT, title TEXT,
    kind TEXT, text TEXT, page_starts TEXT, sent_lo INTEGER, sent_hi INTEGER,
    chunk_lo INTEGER, chunk_hi INTEGER);
CREATE TABLE sentences (id INTEGER PRIMARY KEY, doc INTEGER, start INTEGER, end INTEGER,
    page INTEGER, tokens INTEGER);
CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc INTEGER, start INTEGER, end INTEGER,
    page INTEGER, first INTEGER, last INTEGER, tokens INTEGER);
CREATE INDEX documents_source ON documents(source);
"""


@dataclass(frozen=True)
class DocRow:
    """A document as stored: its row, its text and where its sentences and chunks are."""

    row: int
    document: Document
    sent_lo: int
    sent_hi: int
    chunk_lo: int
    chunk_hi: int


@dataclass(frozen=True)
class ChunkRow:
    id: int
    doc: int
    start: int
    end: int
    page: int | None
    first: int
    last: int
    tokens: int = 0


@dataclass(frozen=True)
class SentenceRow:
    id: int
    doc: int
    start: int
    end: int
    page: int | None
    tokens: int = 0


@contextmanager
def build_lock(index_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the index folder's build lock, or raise IndexLockedError naming the holder."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / ".lock"
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise IndexLockedError(
                        f"{index_dir}: another build is writing this index ({holder}); wait for it to finish"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_generation(index_dir: Path) -> Path | None:
    """The generation folder CURRENT names, or None when there is no index yet."""
    try:
        name = (index_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexFolderError(f"{index_dir}: cannot read {CURRENT} ({exc.strerror}); {REBUILD_HINT}") from None
    if not name.startswith("gen-") or "/" in name:
        raise IndexFolderError(f"{index_dir}/{CURRENT} is damaged (names {name[:40]!r}); {REBUILD_HINT}")
    return index_dir / name


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The manifest of the index in use, or None when there is none."""
    gen = current_generation(index_dir)
    if gen is None:
        return None
    try:
        manifest = json.loads((gen / MANIFEST).read_text())
    except FileNotFoundError:
        raise IndexFolderError(f"{index_dir} is damaged ({gen.name}/{MANIFEST} is missing); {REBUILD_HINT}") from None
    except (OSError, ValueError) as exc:
        raise IndexFolderError(f"{index_dir} is damaged ({MANIFEST} unreadable: {exc}); {REBUILD_HINT}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexFolderError(
            f"{index_dir} has index format {found!r}, this qa reads format {FORMAT_VERSION}; {REBUILD_HINT}"
        )
    return manifest


def publish(index_dir: Path, staging: Path) -> Path:
    """Move a finished staging folder into place and point CURRENT at it, atomically."""
    gen = index_dir / f"gen-{time.time_ns()}"
    _fsync_tree(staging)
    os.rename(staging, gen)
    pointer = index_dir / f".{CURRENT}.{os.getpid()}"
    pointer.write_text(gen.name + "\n")
    with open(pointer, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer, index_dir / CURRENT)
    _fsync_dir(index_dir)
    return gen


def clean_up(index_dir: Path) -> None:
    """Remove staging folders and old generations (call under the lock).

    The generation before the current one is kept, so readers that opened it just before the
    switch can finish.
    """
    current = current_generation(index_dir)
    gens = sorted(
        (p for p in index_dir.glob("gen-*") if p.is_dir() and p != current),
        key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0,
    )
    for entry in gens[:-1] + list(index_dir.glob(".staging-*")):
        shutil.rmtree(entry, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FLAT_MAX = 200_000  # exact search answers in under 30 ms end to end up to here (benchmarks/scale.py)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80


def dense_kind(requested: str, count: int) -> str:
    """The FAISS index for ``count`` chunks: exact while it is fast enough, then HNSW."""
    if requested != "auto":
        return requested
    return "flat" if count <= FLAT_MAX else "hnsw"


def dense_description(requested: str, count: int) -> dict[str, Any]:
    """What the manifest records of the dense index: its kind, and why it was chosen."""
    kind = dense_kind(requested, count)
    described: dict[str, Any] = {"type": kind, "requested": requested, "exact_up_to": FLAT_MAX}
    if kind == "hnsw":
        described.update(m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, storage="8-bit scalar quantised")
    return described


def make_dense(kind: str, vectors: np.ndarray) -> Any:
    """A FAISS index of ``kind`` over unit vectors (inner product = cosine)."""
    import faiss

    dim = vectors.shape[1]
    if kind == "hnsw":
        # 8-bit scalar quantisation keeps a million 384-d vectors in ~0.4 GB; search re-scores the
        # candidates exactly from chunks.npy (retrieve.dense_candidates).
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        if len(vectors):
            index.train(vectors)
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    return index


def write_generation(
    staging: Path,
    manifest: dict[str, Any],
    docs: list[tuple[Document, list[SentenceSpan], list[ChunkSpan]]],
    chunk_vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    chunk_texts: list[str],
    dense_index: Any,
) -> None:
    """Write every file of one generation into ``staging``.

    ``docs`` holds each document with its sentences (start, end, page, tokens) and its chunks
    (start, end, page, first, last, tokens), where first/last count sentences within the document.
    """
    import faiss

    conn = sqlite3.connect(staging / META)
    conn.executescript(SCHEMA)
    sent_at = chunk_at = 0
    for row, (doc, sentences, chunks) in enumerate(docs):
        conn.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                row,
                doc.doc_id,
                doc.source,
                doc.title,
                doc.kind,
                doc.text,
                json.dumps(doc.page_starts),
                sent_at,
                sent_at + len(sentences),
                chunk_at,
                chunk_at + len(chunks),
            ),
        )
        conn.executemany(
            "INSERT INTO sentences VALUES (?,?,?,?,?,?)",
            [(sent_at + i, row, a, b, p, n) for i, (a, b, p, n) in enumerate(sentences)],
        )
        conn.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            [
                (chunk_at + i, row, a, b, p, sent_at + first, sent_at + last, n)
                for i, (a, b, p, first, last, n) in enumerate(chunks)
            ],
        )
        sent_at += len(sentences)
        chunk_at += len(chunks)
    conn.commit()
    conn.close()
    np.save(staging / CHUNK_VECTORS, chunk_vectors.astype(np.float32, copy=False))
    np.save(staging / SENTENCE_VECTORS, sentence_vectors.astype(np.float16, copy=False))
    faiss.write_index(dense_index, str(staging / DENSE))
    Lexical.build(chunk_texts).save(staging / LEXICAL)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False))


def map_npy(path: Path) -> np.ndarray:
    """A read-only memory map of an .npy file, advised for random access.

    Questions read a few scattered rows; on a cold page cache the kernel's default read-ahead
    would read far more of the file around each of them than the row itself.
    """
    import mmap

    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    return np.ndarray(shape, dtype=dtype, buffer=mapped, offset=offset, order="F" if fortran else "C")


class Index:
    """A read-only view of the index in use: metadata, vectors, the FAISS and BM25 indexes."""

    def __init__(self, index_dir: Path, gen: Path, manifest: dict[str, Any]) -> None:
        import faiss

        self.dir = index_dir
        self.gen = gen
        self.manifest = manifest
        self._local = threading.local()
        try:
            self.chunk_vectors = map_npy(gen / CHUNK_VECTORS)
            self.sentence_vectors = map_npy(gen / SENTENCE_VECTORS)
            # Memory-mapped: opening is near-instant at any size, and the vectors are shared with
            # the page cache instead of copied (an index is never added to after it is written).
            self.dense = faiss.read_index(str(gen / DENSE), faiss.IO_FLAG_MMAP_IFC)
            self.lexical = Lexical.load(gen / LEXICAL)
            # Chunk ids run from 0: the largest is found in the b-tree's last page, where COUNT(*)
            # would read the whole table (half a second on a cold million-chunk index).
            self.chunk_count = int(self._db().execute("SELECT COALESCE(MAX(id) + 1, 0) FROM chunks").fetchone()[0])
        except QAError:
            raise
        except Exception as exc:  # numpy, faiss, bm25s and sqlite each fail their own way on damage
            reason = " ".join(str(exc).split())[:160]
            raise IndexFolderError(f"{index_dir} is damaged ({reason}); {REBUILD_HINT}") from None
        sizes = {self.chunk_vectors.shape[0], self.dense.ntotal, self.lexical.size, self.chunk_count}
        if len(sizes) != 1 or self.chunk_vectors.shape[1] != manifest["model"]["dimension"]:
            raise IndexFolderError(f"{index_dir} is damaged (its parts disagree on the chunk count); {REBUILD_HINT}")
        self._docs: dict[int, DocRow] = {}

    @classmethod
    def open(cls, index_dir: Path, model: str | None = None) -> Index:
        """Open the index in ``index_dir``; ``model``, when given, must be the one it was built with."""
        manifest = read_manifest(index_dir)
        if manifest is None:
            raise IndexFolderError(
                f"{index_dir}: no index here yet; build one with `qa index CORPUS --index {index_dir}`"
            )
        built_with = manifest["model"]["name"]
        if model is not None and model != built_with:
            raise IndexFolderError(
                f"{index_dir} was built with model {built_with!r}, not {model!r}; "
                f"use --model {built_with} or rebuild it with `qa index --model {model}`"
            )
        gen = current_generation(index_dir)
        assert gen is not None
        return cls(index_dir, gen, manifest)

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            path = self.gen / META
            if not path.exists():
                raise IndexFolderError(f"{self.dir} is damaged ({META} is missing); {REBUILD_HINT}")
            conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def document(self, row: int) -> DocRow:
        """The document in ``row`` with its text (cached)."""
        cached = self._docs.get(row)
        if cached is not None:
            return cached
        found = (
            self._db()
            .execute(
                "SELECT doc_id, source, title, kind, text, page_starts, sent_lo, sent_hi, chunk_lo, chunk_hi "
                "FROM documents WHERE row = ?",
                (row,),
            )
            .fetchone()
        )
        if found is None:
            raise IndexFolderError(f"{self.dir} is damaged (document {row} missing); {REBUILD_HINT}")
        doc = Document(found[0], found[1], found[2], found[4], found[3], tuple(json.loads(found[5])))
        entry = DocRow(row, doc, found[6], found[7], found[8], found[9])
        if len(self._docs) > 4096:
            self._docs.clear()
        self._docs[row] = entry
        return entry

    @cached_property
    def chunk_docs(self) -> np.ndarray:
        """The document row of every chunk, by chunk id."""
        rows = self._db().execute("SELECT doc FROM chunks ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def document_rows(self) -> list[int]:
        return [r[0] for r in self._db().execute("SELECT row FROM documents ORDER BY row")]

    def row_of(self, doc_id: str) -> int | None:
        found = self._db().execute("SELECT row FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if found is None else int(found[0])

    def rows_with_prefix(self, prefix: str) -> list[int]:
        """Rows of the documents whose id starts with ``prefix`` (lower-case hex)."""
        found = (
            self._db()
            .execute("SELECT row FROM documents WHERE substr(doc_id, 1, ?) = ?", (len(prefix), prefix))
            .fetchall()
        )
        return [int(r[0]) for r in found]

    def chunks(self, ids: list[int]) -> list[ChunkRow]:
        """Chunk rows for ``ids``, in the order given."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = (
            self._db()
            .execute(f"SELECT id, doc, start, end, page, first, last, tokens FROM chunks WHERE id IN ({marks})", ids)
            .fetchall()
        )
        by_id = {r[0]: ChunkRow(*r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def sentences(self, lo: int, hi: int) -> list[SentenceRow]:
        rows = (
            self._db()
            .execute(
                "SELECT id, doc, start, end, page, tokens FROM sentences WHERE id >= ? AND id < ? ORDER BY id", (lo, hi)
            )
            .fetchall()
        )
        return [SentenceRow(*r) for r in rows]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def file_reports(manifest: dict[str, Any]) -> list[FileReport]:
    """Each indexed or skipped file of a manifest with its ingest figures, by name."""
    reports = [
        FileReport(name, "indexed", f["pages"], f["chars"], f["sentences"], f["chunks"], tuple(f["warnings"]))
        for name, f in manifest["files"].items()
    ]
    reports += [FileReport(name, "skipped", error=f["error"]) for name, f in manifest.get("skipped", {}).items()]
    return sorted(reports, key=lambda r: r.source)


def staging_folder(index_dir: Path) -> Path:
    staging = index_dir / f".staging-{os.getpid()}-{time.time_ns()}"
    staging.mkdir(parents=True)
    return staging


def ingest_error(source: str, exc: BaseException) -> str:
    """A one-line reason for a file that could not be read."""
    if isinstance(exc, IngestError):
        return str(exc)
    return f"{source}: unexpected error while reading ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
