"""Qdrant as the search backend: chunk and sentence vectors and BM25 sparse vectors in one collection.

Each chunk is a point with a dense vector ``chunk``, a sparse vector ``bm25`` and the payload a
citation needs (document hash, source, offsets, page); each sentence is a point with a ``sentence``
vector (float16, as the embedded index stores it). Point ids hash the document's content id and
the chunk's or sentence's place in it, so an unchanged file keeps its points across builds and
an incremental build only upserts new files and deletes the ones that are gone.

The sparse values are BM25's term-frequency part (bm25s' Lucene variant, the same k1, b and
average length); Qdrant multiplies in the IDF itself (``Modifier.IDF``), with Lucene's formula. The
average chunk length is kept from the previous build while the corpus' own stays within
``AVGDL_DRIFT`` of it, so an update touches only new points; past that, every chunk's sparse
vector is rewritten with the new average (as bm25s re-weighs everything on every build).

A question is one ``query_batch`` call with two requests, the dense and the BM25 top lists, each
point returned with its vectors; both scores of every candidate are then computed here exactly as
the embedded index computes them, and fused with qa's own fusion (``retrieve.fuse``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..dense import FLAT_MAX
from ..errors import IndexFolderError, QAError
from ..index import Index
from ..lexical import terms
from ..manifest import Manifest
from ..store import MANIFEST, META, rebuild_hint
from ..types import Chunk
from ..writer import SCHEMA, write_documents
from . import Backend, require

CHUNK, SENTENCE, BM25 = "chunk", "sentence", "bm25"
K1, B = 1.2, 0.75  # bm25s' defaults, as the embedded index uses them
UPSERT_BATCH = 256
LEXICAL_LIMIT = 200  # BM25 candidates fetched by ``lexical.scores`` (the whole-array form)
_CACHE_MAX = 20_000
AVGDL_DRIFT = 0.02


def point_id(doc_id: str, kind: str, n: int) -> int:
    """A stable 63-bit point id for the ``n``-th chunk ("c") or sentence ("s") of a document."""
    digest = hashlib.blake2b(f"{doc_id}:{kind}{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def term_id(term: str) -> int:
    """The sparse dimension of a term: 31 bits of its hash (no vocabulary to share between writers)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "big") >> 1


def bm25_sparse(words: Sequence[str], avgdl: float) -> tuple[list[int], list[float]]:
    """The BM25 term-frequency part of one chunk's words, as (dimensions, values)."""
    if not words:
        return [], []
    norm = K1 * (1 - B + B * len(words) / avgdl)
    merged: dict[int, float] = {}
    for word, tf in Counter(words).items():
        key = term_id(word)
        merged[key] = merged.get(key, 0.0) + tf / (norm + tf)
    keys = sorted(merged)
    return keys, [merged[k] for k in keys]


def lucene_idf(df: int, n: int) -> float:
    import math

    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


class _Hit:
    """One point of a result list: its id, payload and vectors."""

    __slots__ = ("id", "payload", "dense", "sparse")

    def __init__(self, pid: int, payload: dict[str, Any], dense: np.ndarray | None, sparse: dict[int, float]) -> None:
        self.id, self.payload, self.dense, self.sparse = pid, payload, dense, sparse


# --- engines: the same few calls over Qdrant Edge (in-process) and qdrant-client (a server) ---------


class _EdgeEngine:
    """Qdrant's engine in this process (qdrant-edge-py), one shard per folder."""

    _open: dict[str, tuple[Any, int]] = {}
    _lock = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = str(Path(path).resolve())
        self.edge = require("qdrant_edge")

    def _shard(self, dimension: int | None = None) -> Any:
        with self._lock:
            found = self._open.get(self.path)
            if found is not None:
                return found[0]
            e = self.edge
            try:
                if (Path(self.path) / "edge_config.json").exists():
                    shard = e.EdgeShard.load(self.path)
                elif dimension is None:
                    raise IndexFolderError(f"{self.path}: no Qdrant shard here; rebuild the index with `qa index`")
                else:
                    Path(self.path).mkdir(parents=True, exist_ok=True)
                    shard = e.EdgeShard.create(self.path, self._config(dimension))
            except QAError:
                raise
            except Exception as exc:
                reason = " ".join(str(exc).split())[:160]
                if "WouldBlock" in reason:
                    reason = "another process has it open (a running `qa serve`?); stop it or use --qdrant-url"
                raise IndexFolderError(f"{self.path}: cannot open the Qdrant shard ({reason})") from None
            self._open[self.path] = (shard, 1)
            return shard

    def _config(self, dimension: int) -> Any:
        e = self.edge
        no_graph = e.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000)
        return e.EdgeConfig(
            vectors={
                CHUNK: e.EdgeVectorParams(size=dimension, distance=e.Distance.Dot),
                SENTENCE: e.EdgeVectorParams(
                    size=dimension,
                    distance=e.Distance.Dot,
                    datatype=e.VectorStorageDatatype.Float16,
                    hnsw_config=no_graph,  # read by id only, never searched
                ),
            },
            sparse_vectors={BM25: e.EdgeSparseVectorParams(modifier=e.Modifier.Idf)},
        )

    def check(self) -> None:
        """Fail now, in one line, if the shard cannot be opened."""
        self._shard()

    def create(self, dimension: int, clear: bool) -> None:
        shard = self._shard(dimension)
        if clear:
            shard.update(self.edge.UpdateOperation.delete_points_by_filter(self.edge.Filter()))

    def upsert(self, points: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
        e = self.edge
        made = []
        for pid, vectors, payload in points:
            named = {
                k: e.SparseVector(*v) if isinstance(v, tuple) else np.asarray(v, dtype=np.float32).tolist()
                for k, v in vectors.items()
            }
            made.append(e.Point(pid, named, payload))
        self._shard().update(e.UpdateOperation.upsert_points(made))

    def update_sparse(self, vectors: list[tuple[int, tuple[list[int], list[float]]]]) -> None:
        e = self.edge
        made = [e.PointVectors(pid, {BM25: e.SparseVector(*v)}) for pid, v in vectors if v[0]]
        if made:
            self._shard().update(e.UpdateOperation.update_vectors(made))

    def delete_docs(self, doc_ids: list[str]) -> None:
        e = self.edge
        if doc_ids:
            match = e.FieldCondition(key="doc", match=e.MatchAny(doc_ids))
            self._shard().update(e.UpdateOperation.delete_points_by_filter(e.Filter(must=[match])))

    def finish(self) -> None:
        shard = self._shard()
        shard.optimize()
        shard.flush()

    def query(self, requests: list[tuple[str, Any, int, bool]]) -> list[list[_Hit]]:
        e = self.edge
        made = []
        for using, vector, limit, exact in requests:
            vec = e.SparseVector(*vector) if isinstance(vector, tuple) else np.asarray(vector).tolist()
            made.append(
                e.QueryRequest(
                    limit=limit,
                    query=e.Query.Nearest(vec, using=using),
                    with_vector=[CHUNK, BM25],
                    with_payload=["doc", "n"],
                    params=e.SearchParams(exact=exact),
                )
            )
        found = self._shard().query_batch(e.QueryBatchRequest(made))
        return [[_hit(p.id, p.payload, p.vector) for p in points] for points in found]

    def retrieve(self, ids: list[int], using: str) -> dict[int, np.ndarray]:
        records = self._shard().retrieve(ids, with_payload=False, with_vector=[using])
        return {int(r.id): np.asarray(r.vector[using], dtype=np.float32) for r in records if using in (r.vector or {})}

    def count(self) -> int:
        return int(self._shard().count(self.edge.CountRequest()))

    def close(self) -> None:
        with self._lock:
            found = self._open.pop(self.path, None)
        if found is not None:
            found[0].close()


class _ClientEngine:
    """A Qdrant server (or the client's local mode, for tests) through qdrant-client."""

    def __init__(self, client: Any, collection: str) -> None:
        self.client = client
        self.collection = collection
        self.models = require("qdrant_client.models")

    @classmethod
    def connect(cls, backend: Backend) -> _ClientEngine:
        qdrant_client = require("qdrant_client")
        try:
            client = qdrant_client.QdrantClient(url=backend.url, api_key=backend.api_key, timeout=30)
        except Exception as exc:
            raise IndexFolderError(f"cannot reach Qdrant at {backend.url} ({_reason(exc)})") from None
        return cls(client, backend.collection)

    def check(self) -> None:
        """Fail now, in one line, if the server is unreachable or has no such collection."""
        if not self._call(self.client.collection_exists, self.collection):
            raise IndexFolderError(
                f"Qdrant has no collection {self.collection!r}; build it with `qa index --qdrant-url URL`"
            )

    def create(self, dimension: int, clear: bool) -> None:
        m = self.models
        exists = self._call(self.client.collection_exists, self.collection)
        if exists and clear:
            self._call(self.client.delete_collection, self.collection)
            exists = False
        if not exists:
            self._call(
                self.client.create_collection,
                self.collection,
                vectors_config={
                    CHUNK: m.VectorParams(size=dimension, distance=m.Distance.DOT),
                    SENTENCE: m.VectorParams(
                        size=dimension,
                        distance=m.Distance.DOT,
                        datatype=m.Datatype.FLOAT16,
                        hnsw_config=m.HnswConfigDiff(m=0),
                    ),
                },
                sparse_vectors_config={BM25: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            )
            self._call(
                self.client.create_payload_index, self.collection, "doc", field_schema=m.PayloadSchemaType.KEYWORD
            )

    def upsert(self, points: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
        m = self.models
        made = [
            m.PointStruct(
                id=pid,
                vector={
                    k: m.SparseVector(indices=v[0], values=v[1])
                    if isinstance(v, tuple)
                    else np.asarray(v, dtype=np.float32).tolist()
                    for k, v in vectors.items()
                },
                payload=payload,
            )
            for pid, vectors, payload in points
        ]
        self._call(self.client.upsert, self.collection, made, wait=True)

    def update_sparse(self, vectors: list[tuple[int, tuple[list[int], list[float]]]]) -> None:
        m = self.models
        made = [
            m.PointVectors(id=pid, vector={BM25: m.SparseVector(indices=v[0], values=v[1])})
            for pid, v in vectors
            if v[0]
        ]
        if made:
            self._call(self.client.update_vectors, self.collection, made, wait=True)

    def delete_docs(self, doc_ids: list[str]) -> None:
        m = self.models
        if doc_ids:
            match = m.Filter(must=[m.FieldCondition(key="doc", match=m.MatchAny(any=doc_ids))])
            self._call(self.client.delete, self.collection, m.FilterSelector(filter=match), wait=True)

    def finish(self) -> None:
        pass

    def query(self, requests: list[tuple[str, Any, int, bool]]) -> list[list[_Hit]]:
        m = self.models
        made = [
            m.QueryRequest(
                query=m.SparseVector(indices=vector[0], values=vector[1])
                if isinstance(vector, tuple)
                else np.asarray(vector).tolist(),
                using=using,
                limit=limit,
                with_vector=[CHUNK, BM25],
                with_payload=["doc", "n"],
                params=m.SearchParams(exact=exact),
            )
            for using, vector, limit, exact in requests
        ]
        found = self._call(self.client.query_batch_points, self.collection, made)
        return [[_hit(p.id, p.payload, p.vector) for p in response.points] for response in found]

    def retrieve(self, ids: list[int], using: str) -> dict[int, np.ndarray]:
        records = self._call(self.client.retrieve, self.collection, ids, with_payload=False, with_vectors=[using])
        return {int(r.id): np.asarray(r.vector[using], dtype=np.float32) for r in records if using in (r.vector or {})}

    def count(self) -> int:
        return int(self._call(self.client.count, self.collection).count)

    def close(self) -> None:
        self.client.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """One request; a transport or server failure becomes a one-line IndexFolderError."""
        try:
            return fn(*args, **kwargs)
        except QAError:
            raise
        except Exception as exc:
            where = getattr(self.client, "_location", None) or "the Qdrant server"
            raise IndexFolderError(f"Qdrant request to {where} failed ({_reason(exc)}); try again") from None


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


def _hit(pid: Any, payload: dict[str, Any] | None, vectors: Any) -> _Hit:
    vectors = vectors or {}
    dense = vectors.get(CHUNK)
    sparse = vectors.get(BM25)
    return _Hit(
        int(pid),
        payload or {},
        None if dense is None else np.asarray(dense, dtype=np.float32),
        {} if sparse is None else dict(zip(sparse.indices, sparse.values, strict=True)),
    )


def engine_for(backend: Backend, client: Any = None) -> _EdgeEngine | _ClientEngine:
    """The engine for ``backend`` (``client``: an already made QdrantClient, e.g. local mode in tests)."""
    if client is not None:
        return _ClientEngine(client, backend.collection)
    if backend.path is not None:
        return _EdgeEngine(backend.path)
    return _ClientEngine.connect(backend)


# --- writing ----------------------------------------------------------------------------------------


def write(
    staging: Path,
    manifest: dict[str, Any],
    docs: list[Any],
    texts: list[list[str]],
    backend: Backend,
    previous: dict[str, Any] | None,
    engine: Any = None,
) -> None:
    """Write one generation: metadata and term statistics to ``staging``, new points to Qdrant.

    ``docs``: the build's documents in index order (each with ``document``, ``sentences``,
    ``chunks`` and their vectors); ``texts``: each document's chunk texts as searched; ``previous``:
    the manifest of the index this build reuses (its points stay), or None for a full build.
    """
    engine = engine or engine_for(backend)
    reuse = previous is not None and backend.same_place(previous.get("backend"))
    words = [[terms(t) for t in doc_texts] for doc_texts in texts]
    lengths = [len(w) for doc_words in words for w in doc_words]
    avgdl = sum(lengths) / max(1, len(lengths))
    reweigh = not reuse
    if reuse and previous is not None:
        kept_avgdl = float(previous["backend"]["bm25"]["avgdl"])
        reweigh = abs(avgdl - kept_avgdl) > AVGDL_DRIFT * kept_avgdl
        avgdl = avgdl if reweigh else kept_avgdl
    manifest["backend"] = {**backend.describe(), "bm25": {"k1": K1, "b": B, "avgdl": avgdl, "ids": "blake2b-31"}}
    _write_meta(staging / META, docs, words)
    kept = {f["doc_id"] for f in previous["files"].values()} if reuse and previous else set()
    engine.create(manifest["model"]["dimension"], clear=not reuse)
    batch: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    for doc, doc_words in zip(docs, words, strict=True):
        d = doc.document
        if d.doc_id in kept:
            if reweigh:
                engine.update_sparse(
                    [(point_id(d.doc_id, "c", n), bm25_sparse(w, avgdl)) for n, w in enumerate(doc_words)]
                )
            continue
        for n, (c, chunk_words) in enumerate(zip(doc.chunks, doc_words, strict=True)):
            vectors: dict[str, Any] = {CHUNK: doc.chunk_vectors[n]}
            sparse = bm25_sparse(chunk_words, avgdl)
            if sparse[0]:
                vectors[BM25] = sparse
            payload = {"doc": d.doc_id, "n": n, "source": d.source, "start": c.start, "end": c.end, "page": c.page}
            batch.append((point_id(d.doc_id, "c", n), vectors, payload))
        for n, s in enumerate(doc.sentences):
            vector = np.asarray(doc.sentence_vectors[n], dtype=np.float32)
            payload = {"doc": d.doc_id, "n": n, "start": s.start, "end": s.end, "page": s.page}
            batch.append((point_id(d.doc_id, "s", n), {SENTENCE: vector}, payload))
        if len(batch) >= UPSERT_BATCH:
            engine.upsert(batch)
            batch = []
    if batch:
        engine.upsert(batch)
    engine.finish()
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False))


def drop_gone(backend: Backend, previous: dict[str, Any] | None, manifest: dict[str, Any], engine: Any = None) -> None:
    """After the new generation is in place: delete the points of files that are no longer indexed."""
    if previous is None or not backend.same_place(previous.get("backend")):
        return
    now = {f["doc_id"] for f in manifest["files"].values()}
    gone = sorted({f["doc_id"] for f in previous["files"].values()} - now)
    if gone:
        (engine or engine_for(backend)).delete_docs(gone)


def _write_meta(path: Path, docs: list[Any], words: list[list[list[str]]]) -> None:
    """meta.sqlite as the embedded index writes it, plus each term's document frequency."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA + "CREATE TABLE terms (term TEXT PRIMARY KEY, df INTEGER) WITHOUT ROWID;")
    write_documents(conn, [(doc.document, doc.sentences, doc.chunks) for doc in docs])
    df: Counter[str] = Counter()
    for doc_words in words:
        for w in doc_words:
            df.update(set(w))
    conn.executemany("INSERT INTO terms VALUES (?,?)", df.items())
    conn.commit()
    conn.close()


# --- reading ----------------------------------------------------------------------------------------


class QdrantIndex(Index):
    """The index in use, with its vectors and search in Qdrant and its metadata in ``meta.sqlite``.

    It offers what ``retrieve``, ``extract``, ``cite`` and ``quote`` use of ``Index``, plus
    ``hybrid``: both candidate lists of a question in one request.
    """

    def __init__(
        self, index_dir: Path, gen: Path, manifest: Manifest, backend: Backend, engine: Any = None, holding: Any = None
    ):
        self.dir = index_dir
        self.gen = gen
        self.manifest = manifest
        self.backend = backend
        self._start_reading(holding)
        self._docs = {}
        self.engine = engine or engine_for(backend)
        self.engine.check()
        try:
            db = self._db()
            self.chunk_count = int(db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM chunks").fetchone()[0])
            placed = db.execute("SELECT doc_id, row, chunk_lo, sent_lo FROM documents").fetchall()
        except QAError:
            raise
        except Exception as exc:
            raise IndexFolderError(f"{index_dir} is damaged ({_reason(exc)}); {rebuild_hint(index_dir)}") from None
        self._chunk_lo = {doc_id: lo for doc_id, _row, lo, _s in placed}
        self._doc_ids = {row: (doc_id, lo, s) for doc_id, row, lo, s in placed}
        self.exact = manifest.dense.get("type", "flat") == "flat" or self.chunk_count <= FLAT_MAX
        self.lexical = QdrantLexical(self)
        self.dense = _Dense(self)
        self.chunk_vectors = _Vectors(self, "c")
        self.sentence_vectors = _Vectors(self, "s")
        self._seen: dict[int, _Hit] = {}  # recent result points by chunk row, with their vectors

    # -- search --

    def hybrid(self, query: np.ndarray, query_terms: list[str], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both candidate lists in one request; returns (chunk ids, dense scores, lexical scores), by id."""
        n = min(n, self.chunk_count)
        known = self.lexical.known(query_terms)
        requests: list[tuple[str, Any, int, bool]] = [(CHUNK, query, n, self.exact)]
        if known:
            requests.append((BM25, _sparse_query(known), n, False))
        lists = self.engine.query(requests)
        by_row: dict[int, _Hit] = {}
        for hit in (h for hits in lists for h in hits):
            row = self._row_of(hit)
            if row is not None:
                by_row[row] = hit
        ids = np.array(sorted(by_row), dtype=np.int64)
        hits = [by_row[i] for i in ids]
        dense = np.stack([h.dense for h in hits]) @ query.astype(np.float32) if hits else np.zeros(0, dtype=np.float32)
        lexical = np.array([_lexical_score(h, known) for h in hits], dtype=np.float32)
        return ids, dense.astype(np.float32), lexical

    def hybrid_search(self, query: np.ndarray, query_terms: list[str], settings: Any) -> list[Any]:
        """``retrieve.search`` over this index: one request, then qa's fusion over the same candidates."""
        from ..retrieve import Hit, fuse

        ids, dense, lexical = self.hybrid(query, query_terms, settings.candidates)
        if not len(ids):
            return []
        fused = fuse(dense, lexical, settings)
        order = np.argsort(-fused, kind="stable")
        return [Hit(int(ids[i]), float(fused[i]), float(dense[i]), float(lexical[i])) for i in order]

    def _row_of(self, hit: _Hit) -> int | None:
        """The chunk row of a result point (None for a point of a document not in this generation)."""
        lo = self._chunk_lo.get(hit.payload.get("doc", ""))
        if lo is None:
            return None
        row = lo + int(hit.payload.get("n", 0))
        if len(self._seen) > _CACHE_MAX:
            self._seen.clear()
        self._seen[row] = hit
        return row

    # -- rows and vectors --

    def chunks(self, ids: list[int]) -> list[Chunk]:
        """The chunks in rows ``ids``; their sentences' vectors are fetched in the same breath (one request)."""
        chunks = super().chunks(ids)
        self.sentence_vectors.prefetch([s for c in chunks for s in self.sentence_rows(c)])
        return chunks

    def point_ids(self, kind: str, rows: Iterable[int]) -> dict[int, int]:
        """Point ids of chunk ("c") or sentence ("s") rows."""
        rows = [int(r) for r in rows]
        if not rows:
            return {}
        table = "chunks" if kind == "c" else "sentences"
        marks = ",".join("?" * len(rows))
        found = self._db().execute(f"SELECT id, doc FROM {table} WHERE id IN ({marks})", rows).fetchall()
        out = {}
        for rid, doc in found:
            doc_id, chunk_lo, sent_lo = self._doc_ids[doc]
            out[rid] = point_id(doc_id, kind, rid - (chunk_lo if kind == "c" else sent_lo))
        return out

    def df(self, words: Iterable[str]) -> dict[str, int]:
        words = sorted(set(words))
        if not words:
            return {}
        marks = ",".join("?" * len(words))
        return dict(self._db().execute(f"SELECT term, df FROM terms WHERE term IN ({marks})", words).fetchall())

    def close(self) -> None:
        super().close()


def _sparse_query(known: dict[str, tuple[int, float]]) -> tuple[list[int], list[float]]:
    merged: dict[int, float] = {}
    for word, (count, _idf) in known.items():
        key = term_id(word)
        merged[key] = merged.get(key, 0.0) + count
    keys = sorted(merged)
    return keys, [merged[k] for k in keys]


def _lexical_score(hit: _Hit, known: dict[str, tuple[int, float]]) -> float:
    """BM25 of one point for the query, as bm25s computes it (repeated query words count again)."""
    return float(sum(count * idf * hit.sparse.get(term_id(w), 0.0) for w, (count, idf) in known.items()))


class QdrantLexical:
    """The lexical side as ``Index.lexical`` offers it, over the term table and Qdrant's BM25 vectors."""

    def __init__(self, index: QdrantIndex) -> None:
        self.index = index
        self.size = index.chunk_count
        self._idf: dict[str, float] = {}

    def known(self, query_terms: Sequence[str]) -> dict[str, tuple[int, float]]:
        """Query words the corpus uses, with how often the query repeats each and their idf."""
        counts = Counter(query_terms)
        df = self.index.df(counts)
        return {w: (counts[w], lucene_idf(df[w], self.size)) for w in counts if w in df}

    def idf(self, term: str, unknown: float = 0.0) -> float:
        cached = self._idf.get(term)
        if cached is None:
            df = self.index.df([term]).get(term)
            cached = lucene_idf(df, self.size) if df else float("nan")
            if len(self._idf) > _CACHE_MAX:
                self._idf.clear()
            self._idf[term] = cached
        return unknown if cached != cached else cached

    @property
    def max_idf(self) -> float:
        return lucene_idf(0, self.size)

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """BM25 of every chunk (zero outside the top ``LEXICAL_LIMIT`` and recently seen points)."""
        out = np.zeros(self.size, dtype=np.float32)
        known = self.known(query_terms)
        if not known:
            return out
        (hits,) = self.index.engine.query([(BM25, _sparse_query(known), LEXICAL_LIMIT, False)])
        for hit in hits:
            self.index._row_of(hit)
        for row, hit in list(self.index._seen.items()):
            out[row] = _lexical_score(hit, known)
        return out


class _Dense:
    """``Index.dense`` as retrieve uses it: ``search(queries, k) -> (scores, ids)``."""

    def __init__(self, index: QdrantIndex) -> None:
        self.index = index
        self.ntotal = index.chunk_count

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        lists = self.index.engine.query([(CHUNK, q, k, self.index.exact) for q in queries])
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for i, hits in enumerate(lists):
            rows = [(self.index._row_of(h), h) for h in hits]
            rows = [(r, h) for r, h in rows if r is not None][:k]
            ids[i, : len(rows)] = [r for r, _ in rows]
            scores[i, : len(rows)] = [float(h.dense @ queries[i]) for _, h in rows]
        return scores, ids


class _Vectors:
    """Chunk or sentence vectors by row (``[ids]`` or ``[lo:hi]``), read from Qdrant and kept a while."""

    def __init__(self, index: QdrantIndex, kind: str) -> None:
        self.index = index
        self.kind = kind
        self.using = CHUNK if kind == "c" else SENTENCE
        self.dtype = np.float32 if kind == "c" else np.float16
        self.dimension = index.manifest.dimension
        self._cache: dict[int, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return (self.index.chunk_count if self.kind == "c" else -1, self.dimension)

    def prefetch(self, rows: Iterable[int]) -> dict[int, np.ndarray]:
        """The vectors of ``rows`` that are known, reading the ones not kept yet in one request."""
        have: dict[int, np.ndarray] = {}
        missing = []
        for r in rows:
            seen = self.index._seen.get(r) if self.kind == "c" else None
            vector = seen.dense if seen is not None else self._cache.get(r)
            if vector is None:
                missing.append(r)
            else:
                have[r] = vector
        if not missing:
            return have
        pids = self.index.point_ids(self.kind, missing)
        found = self.index.engine.retrieve(list(pids.values()), self.using)
        if len(self._cache) + len(pids) > _CACHE_MAX:
            self._cache.clear()
        for row, pid in pids.items():
            if pid in found:
                have[row] = self._cache[row] = found[pid].astype(self.dtype)
        return have

    def _row(self, row: int, have: dict[int, np.ndarray]) -> np.ndarray:
        vector = have.get(row)
        if vector is None:
            raise IndexFolderError(
                f"{self.index.dir}: Qdrant has no {self.using} vector for row {row}; rebuild with `qa index --rebuild`"
            )
        return vector

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            rows = list(range(*key.indices(1 << 62)))
        else:
            rows = [int(r) for r in np.atleast_1d(np.asarray(key))]
        have = self.prefetch(rows)
        if not rows:
            return np.zeros((0, self.dimension), dtype=self.dtype)
        return np.stack([self._row(r, have) for r in rows]).astype(self.dtype, copy=False)
