"""Reading the index in use: metadata, vectors, the FAISS and BM25 indexes (``Index``), and
``LiveIndex``, which moves a long-running reader to each new generation between its requests.

The folder's layout and the build's transaction are in ``store``, the manifest in ``manifest``,
the FAISS policy in ``dense`` and writing a generation in ``writer``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import IndexFolderError, QAError
from .lexical import Lexical
from .manifest import Manifest, read_generation
from .store import (
    CHUNK_VECTORS,
    DENSE,
    LEXICAL,
    META,
    SENTENCE_VECTORS,
    current_generation,
    current_stamp,
    hold,
    rebuild_hint,
)
from .types import Chunk, Document, Sentence


@dataclass(frozen=True)
class DocRow:
    """A document as stored: its row, its text and where its sentences and chunks are."""

    row: int
    document: Document
    sent_lo: int
    sent_hi: int
    chunk_lo: int
    chunk_hi: int


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


class _NoLexical:
    """The BM25 side of an index without chunks: no word is known, nothing scores."""

    size = 0
    max_idf = math.log(2.0)

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def idf(self, term: str, unknown: float = 0.0) -> float:
        return unknown


class Index:
    """A read-only view of one generation: metadata, vectors, the FAISS and BM25 indexes.

    While it is open it holds the generation (``store.hold``), so a build in another process
    does not remove it from under its readers.
    """

    def __init__(self, index_dir: Path, gen: Path, manifest: Manifest, holding: IO[bytes] | None = None) -> None:
        import faiss

        self.dir = index_dir
        self.gen = gen
        self.manifest = manifest
        self._start_reading(holding)
        try:
            self.chunk_vectors = map_npy(gen / CHUNK_VECTORS)
            self.sentence_vectors = map_npy(gen / SENTENCE_VECTORS)
            # Memory-mapped: opening is near-instant at any size, and the vectors are shared with
            # the page cache instead of copied (an index is never added to after it is written).
            self.dense = faiss.read_index(str(gen / DENSE), faiss.IO_FLAG_MMAP_IFC)
            empty = manifest.counts.get("chunks", -1) == 0 and not (gen / LEXICAL).exists()
            self.lexical: Lexical | _NoLexical = _NoLexical() if empty else Lexical.load(gen / LEXICAL)
            # Chunk ids run from 0: the largest is found in the b-tree's last page, where COUNT(*)
            # would read the whole table (half a second on a cold million-chunk index).
            self.chunk_count = int(self._db().execute("SELECT COALESCE(MAX(id) + 1, 0) FROM chunks").fetchone()[0])
        except QAError:
            self.close()
            raise
        except Exception as exc:  # numpy, faiss, bm25s and sqlite each fail their own way on damage
            self.close()
            reason = " ".join(str(exc).split())[:160]
            raise IndexFolderError(f"{index_dir} is damaged ({reason}); {rebuild_hint(index_dir)}") from None
        sizes = {self.chunk_vectors.shape[0], self.dense.ntotal, self.lexical.size, self.chunk_count}
        if len(sizes) != 1 or self.chunk_vectors.shape[1] != manifest.dimension:
            self.close()
            raise IndexFolderError(
                f"{index_dir} is damaged (its parts disagree on the chunk count); {rebuild_hint(index_dir)}"
            )
        self._docs: dict[int, DocRow] = {}

    def _start_reading(self, holding: IO[bytes] | None) -> None:
        """The state every reader keeps: its hold on the generation and its connections, per thread."""
        self._holding = holding
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: Path, model: str | None = None, backend: Any = None) -> Index:
        """Open the index in ``index_dir``; ``model``, when given, must be the one it was built with.

        An index whose vectors live in Qdrant opens as ``backends.qdrant.QdrantIndex`` (``backend``,
        when given, replaces where its manifest says they are).
        """
        for _ in range(5):  # a build may switch CURRENT and remove the old generation meanwhile
            gen = current_generation(index_dir)
            if gen is None:
                raise IndexFolderError(
                    f"{index_dir}: no index here yet; build one with `qa index CORPUS --index {index_dir}`"
                )
            try:
                holding = hold(gen)
            except FileNotFoundError:
                if current_generation(index_dir) == gen:
                    break  # CURRENT names a generation that is not there
                continue
            except OSError as exc:
                raise IndexFolderError(f"{index_dir}: cannot read {gen.name} ({exc.strerror})") from None
            try:
                manifest = read_generation(index_dir, gen)
            except BaseException:
                holding.close()
                raise
            if model is not None and model != manifest.model:
                holding.close()
                raise IndexFolderError(
                    f"{index_dir} was built with model {manifest.model!r}, not {model!r}; "
                    f"use --model {manifest.model} or rebuild it with `qa index --rebuild --model {model}`"
                )
            if manifest.backend:
                return _open_backend(index_dir, gen, manifest, backend, holding)
            return cls(index_dir, gen, manifest, holding)
        missing = gen.name if gen is not None else "its generation"  # gen is set: the loop ran
        raise IndexFolderError(f"{index_dir} is damaged ({missing} is missing); {rebuild_hint(index_dir)}")

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            path = self.gen / META
            if not path.exists():
                raise IndexFolderError(f"{self.dir} is damaged ({META} is missing); {rebuild_hint(self.dir)}")
            conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
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
            raise IndexFolderError(f"{self.dir} is damaged (document {row} missing); {rebuild_hint(self.dir)}")
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

    def chunks(self, ids: list[int]) -> list[Chunk]:
        """The chunks in rows ``ids``, in the order given (each with its ``row`` and ``doc_row``).

        The table keeps a chunk's ``first`` and ``last`` as sentence rows; they are read back
        counted within the document again, as the chunker made them.
        """
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = (
            self._db()
            .execute(f"SELECT id, doc, start, end, page, first, last, tokens FROM chunks WHERE id IN ({marks})", ids)
            .fetchall()
        )
        by_id: dict[int, Chunk] = {}
        for row, doc_row, start, end, page, first, last, tokens in rows:
            stored = self.document(doc_row)
            lo = stored.sent_lo
            by_id[row] = Chunk(stored.document.doc_id, start, end, page, first - lo, last - lo, tokens, row, doc_row)
        return [by_id[i] for i in ids if i in by_id]

    def sentences(self, lo: int, hi: int) -> list[Sentence]:
        """The sentences in rows ``lo`` to ``hi`` (``hi`` not included), each with its ``row`` and ``doc_row``."""
        rows = (
            self._db()
            .execute(
                "SELECT id, doc, start, end, page, tokens FROM sentences WHERE id >= ? AND id < ? ORDER BY id", (lo, hi)
            )
            .fetchall()
        )
        return [
            Sentence(self.document(doc_row).document.doc_id, start, end, page, tokens, row, doc_row)
            for row, doc_row, start, end, page, tokens in rows
        ]

    def document_of(self, item: Sentence | Chunk) -> DocRow:
        """The stored document of a sentence or chunk read back from this index."""
        if item.doc_row is None:
            raise ValueError(f"{item} was not read back from an index")
        return self.document(item.doc_row)

    def sentence_rows(self, chunk: Chunk) -> range:
        """The rows of the sentences of ``chunk`` (read back from this index)."""
        lo = self.document_of(chunk).sent_lo
        return range(lo + chunk.first, lo + chunk.last)

    def close(self) -> None:
        """Close every thread's connection and let the generation go."""
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
        if self._holding is not None:
            self._holding.close()
            self._holding = None


def _open_backend(index_dir: Path, gen: Path, manifest: Manifest, backend: Any, holding: IO[bytes]) -> Index:
    from .backends import Backend
    from .backends.qdrant import QdrantIndex

    try:
        where = backend or Backend.from_manifest(dict(manifest.backend or {}))
        return QdrantIndex(index_dir, gen, manifest, where, holding=holding)
    except BaseException:
        holding.close()
        raise


class LiveIndex:
    """The index a long-running reader (a server, an Assistant) answers from.

    Between requests it notices that a build has published a new generation (CURRENT changed)
    and switches to it; a generation stays open until the requests reading it have finished.
    """

    def __init__(self, index: Index) -> None:
        self._index = index
        self._stamp = current_stamp(index.dir)
        self._readers: dict[int, int] = {}  # id(Index) -> requests reading it
        self._lock = threading.Lock()
        self._pinned = threading.local()  # the generation this thread is reading, inside `reading`
        self._refused: str | None = None

    @property
    def dir(self) -> Path:
        return self._index.dir

    def current(self) -> Index:
        """The newest generation (for a quick look; ``reading`` for a whole request)."""
        with self._lock:
            self._refresh()
            return self._index

    @contextmanager
    def reading(self) -> Iterator[Index]:
        """The newest generation, kept open until the block ends even if a newer one comes.

        Blocks nest: inside one, this thread keeps reading the same generation (an answer and
        the passage of its citation come from one index).
        """
        pinned = getattr(self._pinned, "index", None)
        if pinned is not None:
            yield pinned
            return
        with self._lock:
            self._refresh()
            index = self._index
            self._readers[id(index)] = self._readers.get(id(index), 0) + 1
        self._pinned.index = index
        try:
            yield index
        finally:
            self._pinned.index = None
            with self._lock:
                left = self._readers[id(index)] - 1
                if left:
                    self._readers[id(index)] = left
                else:
                    del self._readers[id(index)]
                    if index is not self._index:
                        index.close()

    def switch_to(self, index: Index) -> None:
        """Answer from ``index`` from now on (after a build in this process)."""
        with self._lock:
            self._replace(index, current_stamp(index.dir))

    def _refresh(self) -> None:
        stamp = current_stamp(self._index.dir)
        if stamp == self._stamp or stamp is None:
            return
        old = self._index.manifest
        try:
            new = Index.open(self._index.dir, model=old.model)
        except QAError as exc:
            self._stamp = stamp  # not tried again until the next build; the open generation stays
            self._warn(f"{self._index.dir}: keeps answering from {self._index.gen.name}: {exc}")
            return
        if new.manifest.precision != old.precision:
            new.close()
            self._stamp = stamp
            self._warn(
                f"{self._index.dir}: the new index was built at {new.manifest.precision}, this server encodes "
                f"questions at {old.precision}; it keeps answering from {self._index.gen.name} until restarted"
            )
            return
        self._replace(new, stamp)

    def _replace(self, index: Index, stamp: tuple[int, int] | None) -> None:
        old, self._index, self._stamp = self._index, index, stamp
        if old is not index and id(old) not in self._readers:
            old.close()

    def _warn(self, message: str) -> None:
        if message != self._refused:
            self._refused = message
            print(f"warning: {message}", file=sys.stderr)

    def close(self) -> None:
        with self._lock:
            self._index.close()
