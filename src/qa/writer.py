"""Writing one generation of the index: SQLite metadata, vectors, FAISS, BM25 and the manifest."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .lexical import Lexical
from .manifest import Manifest
from .store import CHUNK_VECTORS, DENSE, LEXICAL, META, SENTENCE_VECTORS
from .types import Chunk, Document, Sentence

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


def write_generation(
    staging: Path,
    manifest: Manifest,
    docs: list[tuple[Document, Sequence[Sentence], Sequence[Chunk]]],
    chunk_vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    chunk_texts: list[str],
    dense_index: Any,
) -> None:
    """Write every file of one generation into ``staging``.

    ``docs`` holds each document with its sentences and chunks, in index order.
    An index without chunks is valid: it has no BM25 folder, and every question abstains.
    """
    import faiss

    conn = sqlite3.connect(staging / META)
    try:
        conn.executescript(SCHEMA)
        write_documents(conn, docs)
        conn.commit()
    finally:
        conn.close()
    np.save(staging / CHUNK_VECTORS, chunk_vectors.astype(np.float32, copy=False))
    np.save(staging / SENTENCE_VECTORS, sentence_vectors.astype(np.float16, copy=False))
    faiss.write_index(dense_index, str(staging / DENSE))
    if chunk_texts:
        Lexical.build(chunk_texts).save(staging / LEXICAL)
    manifest.write(staging)


def write_documents(
    conn: sqlite3.Connection, docs: Iterable[tuple[Document, Sequence[Sentence], Sequence[Chunk]]]
) -> None:
    """Insert each document, its sentences and its chunks into the tables of ``SCHEMA``, rows from 0.

    Sentences and chunks are numbered across the whole index; a chunk's ``first`` and ``last``
    (counted within its document) are stored as the rows of its sentences. ``row`` and ``doc_row``
    of records read back from another index are not used.
    """
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
            [(sent_at + i, row, s.start, s.end, s.page, s.tokens) for i, s in enumerate(sentences)],
        )
        conn.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            [
                (chunk_at + i, row, c.start, c.end, c.page, sent_at + c.first, sent_at + c.last, c.tokens)
                for i, c in enumerate(chunks)
            ],
        )
        sent_at += len(sentences)
        chunk_at += len(chunks)
