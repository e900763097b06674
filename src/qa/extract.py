"""Best verbatim sentences inside the retrieved chunks -> Snippets; abstention with a reason.

Every snippet's text is ``document.text[start:end]``: nothing is generated or rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .cite import make_citation
from .index import Index
from .lexical import terms
from .retrieve import Hit
from .settings import Settings
from .types import Answer, Snippet

JOIN_RATIO = 0.9


@dataclass(frozen=True)
class Scored:
    """A sentence of a retrieved chunk, scored against the question."""

    sentence: int
    doc: int
    start: int
    end: int
    page: int | None
    score: float
    dense: float
    coverage: float
    chunk_rank: int


def score_sentences(
    index: Index, hits: list[Hit], query: np.ndarray, query_terms: list[str], settings: Settings
) -> tuple[list[Hit], list[Scored]]:
    """Score the sentences of the top chunks and re-rank those chunks by their best sentence.

    Returns the re-ranked hits and the distinct sentences, best first.
    """
    top = hits[: settings.chunks_to_read]
    if not top:
        return hits, []
    weights = {t: index.lexical.idf(t) for t in set(query_terms)}
    total = sum(weights.values()) or 1.0
    # Coverage counts words the corpus never uses at full weight: a question about things the
    # sources never mention covers little, however well its other words match.
    every = sum(index.lexical.idf(t, index.lexical.max_idf) for t in set(query_terms)) or 1.0
    best_fused = max(h.score for h in top) or 1.0
    seen: dict[int, Scored] = {}
    chunk_best: dict[int, float] = {}
    for rank, (hit, row) in enumerate(zip(top, index.chunks([h.chunk for h in top]), strict=True)):
        sentences = index.sentences(row.first, row.last)
        if not sentences:
            continue
        vectors = np.asarray(index.sentence_vectors[row.first : row.last], dtype=np.float32)
        dense = vectors @ query.astype(np.float32)
        text = index.document(row.doc).document.text
        chunk_part = hit.score / best_fused
        for s, d in zip(sentences, dense, strict=True):
            words = _terms(text[s.start : s.end])
            matched = sum(w for t, w in weights.items() if t in words)
            lexical = matched / total
            score = (
                settings.sentence_dense_weight * float(d)
                + settings.sentence_lexical_weight * lexical
                + settings.sentence_chunk_weight * chunk_part
            )
            chunk_best[hit.chunk] = max(chunk_best.get(hit.chunk, -1.0), score)
            if s.id not in seen or seen[s.id].score < score:
                seen[s.id] = Scored(s.id, s.doc, s.start, s.end, s.page, score, float(d), matched / every, rank)
    r = settings.rerank_weight
    reranked = (
        sorted(top, key=lambda h: -((1 - r) * h.score / best_fused + r * chunk_best.get(h.chunk, 0.0)))
        + hits[len(top) :]
    )
    return reranked, sorted(seen.values(), key=lambda s: -s.score)


@lru_cache(maxsize=200_000)
def _terms(text: str) -> frozenset[str]:
    return frozenset(terms(text))


def answer(index: Index, question: str, hits: list[Hit], scored: list[Scored], settings: Settings, k: int) -> Answer:
    """The Answer: best sentence (with its neighbour when it needs one) and supporting snippets."""
    if not scored:
        return Answer(question, (), True, "the index holds no passage that matches the question")
    best = scored[0]
    confidence = confidence_of(best)
    if confidence < settings.abstain_below:
        related = tuple(_snippet(index, s.doc, s.start, s.end, s.score) for s in _distinct(scored, k))
        reason = (
            f"the closest passage is too weak a match "
            f"(confidence {confidence:.2f}, below the {settings.abstain_below:.2f} needed)"
        )
        return Answer(question, (), True, reason, related, confidence)
    run = _answer_run(scored)
    used = {s.sentence for s in run}
    rest = _distinct([s for s in scored if s.sentence not in used], k - 1)
    snippets = [_snippet(index, best.doc, run[0].start, run[-1].end, best.score)]
    snippets += [_snippet(index, s.doc, s.start, s.end, s.score) for s in rest]
    return Answer(question, tuple(snippets), False, "", (), confidence)


def confidence_of(best: Scored) -> float:
    """How sure the answer is: the best sentence's similarity plus half its word coverage."""
    return best.dense + 0.5 * best.coverage


def _distinct(scored: list[Scored], k: int) -> list[Scored]:
    """The ``k`` best sentences, each once (a sentence can come from two overlapping chunks)."""
    picked: list[Scored] = []
    seen: set[int] = set()
    for s in scored:
        if len(picked) >= k:
            break
        if s.sentence not in seen:
            picked.append(s)
            seen.add(s.sentence)
    return picked


def _answer_run(scored: list[Scored]) -> list[Scored]:
    """The best sentence, with a neighbour when one sentence is not enough.

    A neighbour joins when the best sentence is a fragment (under 40 characters) or when the
    neighbour scores within ``JOIN_RATIO`` of it, as when the answer runs across both. At most
    two sentences, adjacent in the same document.
    """
    best = scored[0]
    by_id = {s.sentence: s for s in scored}
    short = best.end - best.start < 40
    neighbours = [
        n for n in (by_id.get(best.sentence - 1), by_id.get(best.sentence + 1)) if n is not None and n.doc == best.doc
    ]
    joinable = [n for n in neighbours if short or n.score >= JOIN_RATIO * best.score]
    if not joinable:
        return [best]
    return sorted([best, max(joinable, key=lambda n: n.score)], key=lambda s: s.start)


def _snippet(index: Index, doc_row: int, start: int, end: int, score: float) -> Snippet:
    doc = index.document(doc_row).document
    return Snippet(doc.text[start:end], make_citation(doc, start, end), round(score, 4))
