"""Candidate sentences for the answer scorer, and the question-level cues it reads with them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..lexical import terms
from .features import Cues, is_junk, key_terms, question_type, sentence_features

if TYPE_CHECKING:
    from ..extract import Scored
    from ..index import DocRow, Index
    from ..retrieve import Hit
    from ..types import Chunk

_COMPOUND = re.compile(r"[-&/.]|\d[^\W\d_]|[^\W\d_]\d")
CHUNKS_FOR_TERMS = 20


@dataclass(frozen=True)
class Candidate:
    """A sentence that may answer the question: its scores from retrieval and its text."""

    scored: Scored
    text: str
    title: str
    before: str = ""  # the sentence before it in its document ("" at the start, or when it has no words)
    after: str = ""  # the sentence after it, likewise


def candidates(index: Index, scored: list[Scored], limit: int, with_neighbours: bool = False) -> list[Candidate]:
    """The ``limit`` best distinct sentences that have words (junk never answers); with their
    neighbouring sentences when ``with_neighbours`` (for a reader that reads them, and for training data)."""
    out: list[Candidate] = []
    seen: set[int] = set()
    for s in scored:
        if len(out) >= limit:
            break
        if s.sentence in seen:
            continue
        seen.add(s.sentence)
        row = index.document(s.doc)
        text = row.document.text[s.start : s.end]
        if is_junk(text):
            continue
        before, after = neighbours(index, row, s.sentence) if with_neighbours else ("", "")
        out.append(Candidate(s, text, row.document.title, before, after))
    return out


def neighbours(index: Index, row: DocRow, sentence: int) -> tuple[str, str]:
    """The texts of the sentences just before and after ``sentence`` in its document (junk reads as "")."""
    found = {
        s.row: row.document.text[s.start : s.end]
        for s in index.sentences(max(row.sent_lo, sentence - 1), min(row.sent_hi, sentence + 2))
    }
    before, after = found.get(sentence - 1, ""), found.get(sentence + 1, "")
    return ("" if is_junk(before) else before), ("" if is_junk(after) else after)


def cues(index: Index, question: str, hits: list[Hit]) -> Cues:
    """The question's answer type and the key terms that occur nowhere in the sources.

    A key term is missing when none of its stems is in the index's vocabulary or, for a compound
    such as "F-35" whose parts are common, when it occurs in none of the best lexical chunks (a
    term that rare would bring its chunks to the top).
    """
    missing: list[str] = []
    texts: list[str] | None = None
    for term in key_terms(question):
        stems = terms(term)
        if stems and all(index.lexical.idf(t) == 0.0 for t in stems):
            missing.append(term)
            continue
        if _COMPOUND.search(term):
            if texts is None:
                top = sorted(hits, key=lambda h: -h.lexical)[:CHUNKS_FOR_TERMS]
                texts = [_chunk_text(index, chunk) for chunk in index.chunks([h.chunk for h in top])]
            needle = term.lower()
            if not any(needle in t for t in texts):
                missing.append(term)
    return Cues(question_type(question), tuple(missing))


def _chunk_text(index: Index, chunk: Chunk) -> str:
    return index.document_of(chunk).document.text[chunk.start : chunk.end].lower()


def features(question_cues: Cues, cands: list[Candidate]) -> np.ndarray:
    """The cheap scorer's feature rows for ``cands`` (in their order)."""
    s = [c.scored for c in cands]
    return sentence_features(
        question_cues.kind,
        [c.text for c in cands],
        np.array([x.dense for x in s], dtype=np.float32),
        np.array([x.lexical for x in s], dtype=np.float32),
        np.array([x.coverage for x in s], dtype=np.float32),
        np.array([x.chunk for x in s], dtype=np.float32),
        np.arange(len(s), dtype=np.float32),
        np.array([x.chunk_rank for x in s], dtype=np.float32),
        len(question_cues.missing),
    )
