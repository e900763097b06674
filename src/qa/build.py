"""Build or update an index: files -> documents -> sentences and chunks -> vectors -> the folder.

Unchanged files (same content hash, same model and chunk settings) keep their sentences, chunks
and vectors from the previous index; only new and changed files are read and embedded, and files
that are gone drop out. Everything is written to a staging folder and swapped in at the end.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .chunk import Tokenizer, chunk_document, title_prefix
from .dense import dense_description, make_dense
from .embed import Embedder, ModelEmbedder, embed_with_spans
from .errors import IngestError, InputError, QAError
from .index import Index
from .ingest import SourceFile, discover, file_hash, read_bytes
from .manifest import FileEntry, Manifest, now, read_manifest
from .readers import Prepared, prepare_all
from .settings import Settings, resolve_precision
from .store import transaction
from .types import BuildReport, Chunk, Document, FileReport, Sentence
from .writer import write_generation

if TYPE_CHECKING:
    from .backends import Backend
    from .raybuild import RayRunner

EMBED_BATCH = 256
READ_WINDOW_BYTES = 256_000_000  # new files are parsed in groups of about this many bytes


Progress = Callable[[str, int, int], None]


@dataclass
class _Doc:
    """A document on its way into the new index."""

    document: Document
    sentences: list[Sentence]
    chunks: list[Chunk]
    file: dict[str, Any]
    chunk_vectors: np.ndarray | None = None
    sentence_vectors: np.ndarray | None = None


def build_index(
    index_dir: Path,
    roots: list[Path],
    settings: Settings,
    embedder: ModelEmbedder,
    *,
    rebuild: bool = False,
    documents: list[Document] | None = None,
    progress: bool = False,
    on_progress: Progress | None = None,
    wait_s: float = 0.0,
    excluded: Sequence[str | Path] | None = None,
    managed: Sequence[str | Path] | None = None,
    backend: Backend | None = None,
    runner: RayRunner | None = None,
    embed_batch: int = EMBED_BATCH,
) -> BuildReport:
    """Index the supported files under ``roots`` into ``index_dir``; see the module docstring.

    ``excluded`` files under the roots stay out of the index and ``managed`` ones are recorded
    as copied in by `qa add`; None keeps what the previous manifest says. The lock is taken
    before the model loads, so a second builder fails (or waits) at once. An index may end up
    empty only when files were excluded; otherwise a corpus with nothing to index is an error.
    ``backend``: keep the vectors and search in Qdrant instead of the folder (``qa.backends``).
    ``runner``: parse and embed on a Ray cluster (``qa.raybuild``); the index is the same.
    ``embed_batch``: chunks embedded together, longest first (on Ray, one worker's task).
    """
    if embed_batch < 1:
        raise ValueError(f"embed_batch ({embed_batch}) must be at least 1")
    started = time.perf_counter()
    roots = [Path(os.path.abspath(r)) for r in roots]
    home = Path(index_dir).resolve()
    for root in roots:
        if root.resolve() == home or root.resolve().is_relative_to(home):
            raise InputError(
                f"{root}: is the index folder {index_dir} (or inside it); keep documents and index apart: "
                "give the index another folder with --index"
            )
    with transaction(index_dir, wait_s) as txn:
        tokenizer, dimension = embedder.tokenizer, embedder.dimension
        precision = getattr(embedder, "precision", None) or resolve_precision(settings.precision)
        before = _previous_manifest(index_dir)
        previous = None if rebuild else _reusable(index_dir, before, settings, precision)
        try:
            excluded = _under(roots, before.excluded if excluded is None and before else excluded or ())
            managed = _under(roots, before.managed if managed is None and before else managed or ())
            files, passed = discover(roots, settings.follow_links, home) if documents is None else ([], [])
            kept = [f for f in files if os.path.abspath(f.path) not in excluded]
            reports = [FileReport(name, "skipped", error=f"{name}: {why}") for name, why in passed]
            items: list[SourceFile | Document] = list(kept) if documents is None else list(documents)
            docs, skipped, fresh = _read_all(
                items, previous, settings, tokenizer, reports, progress, on_progress, runner
            )
            if not any(d.chunks for d in docs) and len(kept) == len(files):
                raise IngestError(_nothing_indexed(roots, reports))
            indexed = {os.path.abspath(f.path) for f in kept}
            record = _Record(
                roots,
                tuple(sorted(p for p in excluded if Path(p).exists())),
                tuple(sorted(p for p in managed if p in indexed)),
            )
            manifest = _manifest(settings, precision, dimension, tokenizer, record, docs, skipped)
            if before is not None and manifest.managed:
                manifest = replace(manifest, managed=_still_copies(before, manifest))
            reports += _gone(before, manifest, roots, excluded)
            same_place = _same_backend(before, backend)
            if before is not None and previous is not None and not fresh and same_place and _same(before, manifest):
                return BuildReport(tuple(reports), time.perf_counter() - started, 0)
            embedded = _embed_fresh(docs, embedder, settings, dimension, progress, on_progress, runner, embed_batch)
            if backend is None:
                txn.publish(lambda staging: _write(staging, manifest, docs, settings, dimension))
            else:
                from .backends.qdrant import drop_gone

                reused = before if previous is not None else None
                txn.publish(lambda staging: _write_backend(staging, manifest, docs, settings, backend, reused))
                drop_gone(backend, reused.to_json() if reused is not None else None, manifest.to_json())
        finally:
            if previous is not None:
                previous.close()
        return BuildReport(tuple(reports), time.perf_counter() - started, embedded)


def _gone(before: Manifest | None, manifest: Manifest, roots: list[Path], excluded: Iterable[str]) -> list[FileReport]:
    """The files the previous build indexed and this one does not, each with why: its folder was
    not given this time, it was taken out with `qa remove`, or it is gone from its folder."""
    if before is None:
        return []
    out = []
    taken_out = set(excluded)
    for name, entry in before.files.items():
        if name in manifest.files or name in manifest.skipped:
            continue  # still indexed, or reported as skipped with its reason
        path = Path(entry.path) if entry.path else None
        if path is None:
            why = "not among the documents given this time"
        elif not any(path.is_relative_to(r) for r in roots):
            folder = next((r for r in before.roots if path.is_relative_to(r)), str(path.parent))
            why = f"its folder {folder} was not given this time; name it too to keep it in the index"
        elif str(path) in taken_out:
            why = "taken out with `qa remove`"
        else:
            why = "no longer in its folder"
        out.append(FileReport(name, "removed", warnings=(why,)))
    return out


def _nothing_indexed(roots: list[Path], reports: list[FileReport]) -> str:
    """One line saying that nothing could be indexed, and why, file by file (the first few)."""
    why = [r.error for r in reports if r.status == "skipped"]
    why += [f"{r.source}: no sentences" for r in reports if r.status != "skipped" and not r.chunks]
    shown = "; ".join(why[:5]) + (f"; and {len(why) - 5} more" if len(why) > 5 else "")
    where = ", ".join(str(r) for r in roots)
    if not why:
        return f"nothing could be indexed from {where}: no .txt, .md or .pdf files there; add some"
    if all(w.endswith((": does not exist", ": is a broken link")) for w in why):
        return f"nothing to index: {shown}; check the path"
    return f"nothing could be indexed from {where} ({len(why)} file(s) skipped: {shown}); add .txt, .md or .pdf files"


@dataclass(frozen=True)
class _Record:
    """What a build was asked to index besides its settings."""

    roots: list[Path]
    excluded: tuple[str, ...]
    managed: tuple[str, ...]


def _under(roots: list[Path], paths: Sequence[str | Path]) -> set[str]:
    """The absolute ``paths`` that lie inside one of the folders among ``roots``."""
    folders = [r for r in roots if r.is_dir()]
    absolute = {os.path.abspath(p) for p in paths}
    return {p for p in absolute if any(Path(p).is_relative_to(r) for r in folders)}


def _previous_manifest(index_dir: Path) -> Manifest | None:
    try:
        return read_manifest(index_dir)
    except QAError:
        return None  # a damaged previous index is simply rebuilt


def _reusable(index_dir: Path, manifest: Manifest | None, settings: Settings, precision: str) -> Index | None:
    """The previous index when its vectors can be reused (same model, precision and chunk settings),
    whatever its backend (any backend can take over the vectors of a Qdrant-backed one)."""
    if manifest is None or not manifest.embeds_like(settings, precision):
        return None
    try:
        return Index.open(index_dir)
    except QAError:
        return None


def _same_backend(previous: Manifest | None, backend: Backend | None) -> bool:
    """Whether ``previous`` keeps its vectors where this build is to put them."""
    described = previous.backend if previous is not None else None
    return not described if backend is None else backend.same_place(dict(described) if described else None)


def _same(old: Manifest, new: Manifest) -> bool:
    """Whether the new manifest says what the old one says (then nothing is written)."""
    a, b = old.to_json(), new.to_json()
    for data in (a, b):
        data.pop("built_at")
        data.pop("backend", None)  # compared by _same_backend: the written one adds BM25 statistics
    return a == b


def _read_all(
    files: list[SourceFile | Document],
    previous: Index | None,
    settings: Settings,
    tokenizer: Tokenizer,
    reports: list[FileReport],
    progress: bool,
    on_progress: Progress | None,
    runner: RayRunner | None = None,
) -> tuple[list[_Doc], dict[str, dict[str, Any]], bool]:
    """Read, or take over from ``previous``, every file; returns docs, skipped files, and whether any is new.

    Files are first read as bytes and hashed here; the new ones are then parsed and split into
    sentences on every core (``readers``), and chunked here with the model's tokenizer.
    """
    max_bytes = int(settings.max_file_mb * 1e6)
    entries: list[_Doc | str | None] = [None] * len(files)  # a document, or why the file was skipped
    stats = [_stat(f) if isinstance(f, SourceFile) else {} for f in files]
    hashes: list[tuple[str, str]] = [("", "")] * len(files)
    pending: list[int] = []
    held: dict[int, bytes] = {}  # bytes of new files not yet parsed, at most about READ_WINDOW_BYTES
    prepared: dict[int, Prepared] = {}
    held_bytes = 0
    seen: dict[str, str] = {}
    bar = _bar(len(files), "reading", "file", progress)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        _tick(bar, on_progress, "reading", done, len(files))

    def parse_held() -> None:
        tasks = [(files[i], held[i]) for i in held]
        if runner is not None:
            results = runner.prepare_all(tasks, tick)
        else:
            results = prepare_all(tasks, tick, settings.read_workers_from_bytes)
        prepared.update(zip(held, results, strict=True))
        held.clear()

    for n, file in enumerate(files):
        try:
            if isinstance(file, Document):
                data, digest, doc_id = b"", file.doc_id, file.doc_id
            else:
                data = read_bytes(file, max_bytes)
                digest = file_hash(data)
                doc_id = digest[:16]
            if doc_id in seen:
                raise IngestError(f"{file.source}: same content as {seen[doc_id]}; indexed once, under that name")
            seen[doc_id] = file.source
            hashes[n] = (digest, doc_id)
            entries[n] = _take_over(previous, doc_id, file.source) if previous is not None else None
            if entries[n] is None:
                pending.append(n)
                held[n] = data
                held_bytes += len(data)
                if held_bytes >= READ_WINDOW_BYTES:
                    parse_held()
                    held_bytes = 0
                continue
        except Exception as exc:  # one bad file is reported and skipped; the rest are indexed
            entries[n] = ingest_error(file.source, exc)
        tick()
    parse_held()
    for n in pending:
        result = prepared.pop(n)
        if isinstance(result, Exception):
            entries[n] = ingest_error(files[n].source, result)
            continue
        document, warnings, spans = result
        try:
            sentences, chunks = chunk_document(
                document, tokenizer, settings.chunk_tokens, settings.chunk_overlap, settings.title_in_chunks, spans
            )
        except Exception as exc:
            entries[n] = ingest_error(files[n].source, exc)
            continue
        entries[n] = _Doc(document, sentences, chunks, {"warnings": warnings})
    if bar is not None:
        bar.close()
    docs: list[_Doc] = []
    skipped: dict[str, dict[str, Any]] = {}
    for n, (file, entry) in enumerate(zip(files, entries, strict=True)):
        if isinstance(entry, str) or entry is None:
            reason = entry or f"{file.source}: was not read"
            skipped[file.source] = {**stats[n], "error": reason}
            reports.append(FileReport(file.source, "skipped", error=reason))
            continue
        status = "indexed" if entry.chunk_vectors is None else "unchanged"
        entry.file.update(
            sha256=hashes[n][0],
            doc_id=hashes[n][1],
            **stats[n],
            pages=len(entry.document.page_starts),
            chars=len(entry.document.text),
            sentences=len(entry.sentences),
            chunks=len(entry.chunks),
        )
        docs.append(entry)
        reports.append(
            FileReport(
                file.source,
                status,
                entry.file["pages"],
                entry.file["chars"],
                len(entry.sentences),
                len(entry.chunks),
                tuple(entry.file["warnings"]),
            )
        )
    return docs, skipped, bool(pending) and any(isinstance(entries[n], _Doc) for n in pending)


def _still_copies(before: Manifest, manifest: Manifest) -> tuple[str, ...]:
    """The files `qa add` copied in, less those whose content changed since: an edited copy holds the
    user's work, so it is theirs now and `qa remove` leaves it on disk."""
    old = {e.path: e.sha256 for e in before.files.values() if e.sha256}
    new = {e.path: e.sha256 for e in manifest.files.values() if e.sha256}
    return tuple(p for p in manifest.managed if not (p in old and p in new and new[p] != old[p]))


def _stat(file: SourceFile) -> dict[str, Any]:
    try:
        st = file.path.stat()
        return {"path": os.path.abspath(file.path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"path": os.path.abspath(file.path), "size": -1, "mtime_ns": -1}


def _take_over(previous: Index, doc_id: str, source: str) -> _Doc | None:
    """The stored sentences, chunks and vectors of an unchanged document, under its current name."""
    row = previous.row_of(doc_id)
    if row is None:
        return None
    stored = previous.document(row)
    old = stored.document
    document = Document(old.doc_id, source, old.title, old.text, old.kind, old.page_starts)
    sentences = previous.sentences(stored.sent_lo, stored.sent_hi)
    chunks = previous.chunks(list(range(stored.chunk_lo, stored.chunk_hi)))
    old_file = previous.manifest.files.get(old.source)
    return _Doc(
        document,
        sentences,
        chunks,
        {"warnings": list(old_file.warnings if old_file else ())},
        np.asarray(previous.chunk_vectors[stored.chunk_lo : stored.chunk_hi], dtype=np.float32),
        np.asarray(previous.sentence_vectors[stored.sent_lo : stored.sent_hi], dtype=np.float16),
    )


def chunk_texts(doc: Document, chunks: Sequence[Chunk], with_title: bool) -> list[str]:
    """The text each chunk is embedded and searched as: its title line, then its own text."""
    prefix = title_prefix(doc, with_title)
    return [prefix + doc.text[c.start : c.end] for c in chunks]


def _embed_fresh(
    docs: list[_Doc],
    embedder: Embedder,
    settings: Settings,
    dimension: int,
    progress: bool,
    on_progress: Progress | None,
    runner: RayRunner | None = None,
    embed_batch: int = EMBED_BATCH,
) -> int:
    """Embed the chunks of new documents, and their sentences in the same pass, ``embed_batch`` at a time."""
    work: list[tuple[_Doc, int, str, list[tuple[int, int]], list[int]]] = []
    for doc in docs:
        if doc.chunk_vectors is not None:
            continue
        prefix = len(title_prefix(doc.document, settings.title_in_chunks))
        owner = set()
        for i, chunk in enumerate(doc.chunks):
            mine = [s for s in range(chunk.first, chunk.last) if s not in owner]
            owner.update(mine)
            spans = [
                (prefix + doc.sentences[s].start - chunk.start, prefix + doc.sentences[s].end - chunk.start)
                for s in mine
            ]
            text = chunk_texts(doc.document, [chunk], settings.title_in_chunks)[0]
            work.append((doc, i, text, spans, mine))
    # Longest first, across documents, so every batch pads to texts of about the same length.
    work.sort(key=lambda w: -len(w[2]))
    total = len(work)
    bar = _bar(total, "embedding", "chunk", progress)
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if runner is not None:  # the same batches, each embedded whole by one Ray worker
        starts = range(0, total, embed_batch)
        done = runner.embed_batches(
            [([w[2] for w in work[a : a + embed_batch]], [w[3] for w in work[a : a + embed_batch]]) for a in starts]
        )
        for at, (vectors, pooled) in zip(starts, done, strict=True):
            for k in range(len(vectors)):
                results[at + k] = (vectors[k], pooled[k])
        _tick(None, on_progress, "embedding", total, total)
    for at in range(0, total if runner is None else 0, embed_batch):
        batch = work[at : at + embed_batch]
        vectors, pooled = embed_with_spans(embedder, [w[2] for w in batch], [w[3] for w in batch])
        for k in range(len(batch)):
            results[at + k] = (vectors[k], pooled[k])
        if bar is not None:
            bar.update(len(batch))
        _tick(None, on_progress, "embedding", min(at + embed_batch, total), total)
    if bar is not None:
        bar.close()
    by_doc: dict[int, list[int]] = {}
    for n, item in enumerate(work):
        by_doc.setdefault(id(item[0]), []).append(n)
    for doc in docs:
        if doc.chunk_vectors is not None:
            continue
        indexes = by_doc.get(id(doc), [])
        chunk_vecs = np.zeros((len(doc.chunks), dimension), dtype=np.float32)
        sent_vecs = np.zeros((len(doc.sentences), dimension), dtype=np.float16)
        for n in indexes:
            _, i, _, _, mine = work[n]
            chunk_vecs[i] = results[n][0]
            if mine:
                sent_vecs[mine] = results[n][1]
        doc.chunk_vectors, doc.sentence_vectors = chunk_vecs, sent_vecs
    return total


def _manifest(
    settings: Settings,
    precision: str,
    dimension: int,
    tokenizer: Tokenizer,
    record: _Record,
    docs: list[_Doc],
    skipped: dict[str, dict[str, Any]],
) -> Manifest:
    shape = settings.index_fields()
    chunks = sum(len(d.chunks) for d in docs)
    return Manifest(
        model=settings.model,
        dimension=dimension,
        max_tokens=tokenizer.max_tokens,
        precision=precision,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        title_in_chunks=settings.title_in_chunks,
        lexical=shape["lexical"],
        max_file_mb=settings.max_file_mb,
        dense_index=settings.dense_index,
        follow_links=settings.follow_links,
        dense=dense_description(settings.dense_index, chunks, settings.exact_up_to),
        roots=tuple(str(r) for r in record.roots),
        excluded=record.excluded,
        managed=record.managed,
        files={d.document.source: FileEntry.from_json(d.document.source, d.file) for d in docs},
        skipped={name: FileEntry.from_json(name, f) for name, f in skipped.items()},
        counts={"documents": len(docs), "chunks": chunks, "sentences": sum(len(d.sentences) for d in docs)},
        built_at=now(),
    )


def _write(staging: Path, manifest: Manifest, docs: list[_Doc], settings: Settings, dimension: int) -> None:
    docs = sorted(docs, key=lambda d: d.document.source)
    chunk_vectors = np.zeros((0, dimension), dtype=np.float32)
    sentence_vectors = np.zeros((0, dimension), dtype=np.float16)
    if docs:
        chunk_vectors = np.concatenate([d.chunk_vectors for d in docs if d.chunk_vectors is not None])
        sentence_vectors = np.concatenate([d.sentence_vectors for d in docs if d.sentence_vectors is not None])
    chunk_vectors = chunk_vectors.astype(np.float32, copy=False)
    dense = make_dense(manifest.dense["type"], chunk_vectors)
    texts = [t for d in docs for t in chunk_texts(d.document, d.chunks, settings.title_in_chunks)]
    write_generation(
        staging,
        manifest,
        [(d.document, d.sentences, d.chunks) for d in docs],
        chunk_vectors,
        sentence_vectors,
        texts,
        dense,
    )


def _write_backend(
    staging: Path, manifest: Manifest, docs: list[_Doc], settings: Settings, backend: Backend, previous: Manifest | None
) -> None:
    from .backends.qdrant import write

    docs = sorted(docs, key=lambda d: d.document.source)
    texts = [chunk_texts(d.document, d.chunks, settings.title_in_chunks) for d in docs]
    write(staging, manifest.to_json(), docs, texts, backend, previous.to_json() if previous is not None else None)


def _bar(total: int, what: str, unit: str, show: bool):  # type: ignore[no-untyped-def]
    if not show or total == 0:
        return None
    if not sys.stderr.isatty():
        return _Lines(total, what, unit)
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


class _Lines:
    """Progress off a terminal (a log, a pipe): a plain line on stderr every ``every_s`` seconds.

    A timer writes it, so one large file that takes minutes still shows the work going on; work
    that ends sooner prints nothing, so short builds stay quiet.
    """

    def __init__(self, total: int, what: str, unit: str, every_s: float = 15.0) -> None:
        self.total, self.what, self.unit = total, what, unit
        self.done = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._every_s = every_s
        threading.Thread(target=self._report, daemon=True).start()

    def _report(self) -> None:
        while not self._stop.wait(self._every_s):
            print(self.line(), file=sys.stderr, flush=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"{self.what}: {self.done:,}/{self.total:,} {self.unit}s, {elapsed:.0f} s"

    def update(self, n: int = 1) -> None:
        self.done += n

    def close(self) -> None:
        self._stop.set()
        if time.monotonic() - self.started >= self._every_s:
            print(f"{self.line()}, done", file=sys.stderr, flush=True)


def _tick(bar, on_progress: Progress | None, stage: str, done: int, total: int) -> None:  # type: ignore[no-untyped-def]
    if bar is not None and stage == "reading":
        bar.update(1)
    if on_progress is not None:
        on_progress(stage, done, total)


def ingest_error(source: str, exc: BaseException) -> str:
    """A one-line reason for a file that could not be read."""
    if isinstance(exc, IngestError):
        return str(exc)
    return f"{source}: unexpected error while reading ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
