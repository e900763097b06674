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
from .scorer import Candidate, Cues, Judgement
from .scorer.features import is_cell_column, states_quantity
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
    lexical: float = 0.0  # idf-weighted share of the question's words it holds
    chunk: float = 0.0  # its chunk's fused score over the best chunk's


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
    for rank, (hit, chunk) in enumerate(zip(top, index.chunks([h.chunk for h in top]), strict=True)):
        rows = index.sentence_rows(chunk)
        sentences = index.sentences(rows.start, rows.stop)
        if not sentences:
            continue
        vectors = np.asarray(index.sentence_vectors[rows.start : rows.stop], dtype=np.float32)
        dense = vectors @ query.astype(np.float32)
        stored = index.document_of(chunk)
        text = stored.document.text
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
            row = s.row
            assert row is not None  # read back from the index
            if row not in seen or seen[row].score < score:
                seen[row] = Scored(
                    row, stored.row, s.start, s.end, s.page, score, float(d), matched / every, rank, lexical, chunk_part
                )
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
        related = tuple(_snippet(index, s.doc, s.start, s.end, confidence_of(s)) for s in _distinct(scored, k))
        reason = (
            f"the closest passage is too weak a match "
            f"(confidence {confidence:.2f}, below the {settings.abstain_below:.2f} needed)"
        )
        return Answer(question, (), True, reason, related, round(confidence, 4))
    run = _answer_run(scored)
    used = {s.sentence for s in run}
    rest = _distinct([s for s in scored if s.sentence not in used], k - 1)
    # Each snippet shows its own confidence, on the answer's scale: the answer's is the Answer's.
    snippets = [_snippet(index, best.doc, run[0].start, run[-1].end, confidence)]
    snippets += [_snippet(index, s.doc, s.start, s.end, confidence_of(s)) for s in rest]
    return Answer(question, tuple(snippets), False, "", (), round(confidence, 4))


def confidence_of(best: Scored) -> float:
    """How sure the answer is: the best sentence's similarity plus half its word coverage (0 to 1.5:
    a score, not a probability; the answer scorers give calibrated ones)."""
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


KIND_WORDS = {"count": "a number", "time": "a date or time"}


def judged_answer(
    index: Index,
    question: str,
    cands: list[Candidate],
    question_cues: Cues,
    judgement: Judgement,
    k: int,
    scorer: str,
) -> Answer:
    """The Answer as the answer scorer judged the candidates: its best, or an abstention saying why."""
    if not judgement.order:
        return Answer(question, (), True, "the index holds no passage that matches the question", scorer=scorer)
    ranked = [(cands[i], p) for i, p in zip(judgement.order, judgement.confidence, strict=True)]
    # A "how many" question is answered by a sentence that gives a quantity, or not at all.
    eligible = [(c, p) for c, p in ranked if question_cues.kind != "count" or states_quantity(c.text)]
    best, confidence = eligible[0] if eligible else (ranked[0][0], 0.0)
    if not eligible or confidence < judgement.threshold:
        related = tuple(_snippet(index, c.scored.doc, c.scored.start, c.scored.end, p) for c, p in ranked[:k])
        return Answer(
            question,
            (),
            True,
            abstention_reason(question_cues, bool(eligible) and judgement.stated, confidence, judgement.threshold),
            related,
            round(confidence, 4),
            scorer=scorer,
            missing_terms=question_cues.missing,
        )
    s = best.scored
    start, end = s.start, s.end
    if end - start < 40:  # a fragment: its neighbour in the document completes it
        neighbour = next(
            (c.scored for c, _ in ranked[1:] if c.scored.doc == s.doc and abs(c.scored.sentence - s.sentence) == 1),
            None,
        )
        if neighbour is not None:
            start, end = min(start, neighbour.start), max(end, neighbour.end)
    snippets = [_snippet(index, s.doc, start, end, confidence)]
    for c, p in ranked[1:]:
        if len(snippets) >= k:
            break
        if c.scored.doc == s.doc and c.scored.start < end and c.scored.end > start:
            continue  # never repeat the answer's own text
        snippets.append(_snippet(index, c.scored.doc, c.scored.start, c.scored.end, p))
    phrase = None
    if judgement.phrase is not None and not is_cell_column(best.text):
        a, b = judgement.phrase
        phrase = _snippet(index, s.doc, s.start + a, s.start + b, confidence)
    return Answer(question, tuple(snippets), False, "", (), round(confidence, 4), phrase, scorer, question_cues.missing)


def abstention_reason(question_cues: Cues, stated: bool, confidence: float, threshold: float) -> str:
    """Why the scorer declined, in plain words: a term the sources never use, no fact of the kind
    asked for (``stated`` false: no candidate gives a number or a date), or only weak candidates."""
    if question_cues.missing:
        names = ", ".join(f"'{t}'" for t in question_cues.missing)
        return f"the sources never mention {names}"
    if question_cues.kind in KIND_WORDS and not stated:
        return f"no passage states {KIND_WORDS[question_cues.kind]}, which the question asks for"
    return f"no passage clearly answers it (the best has confidence {confidence:.2f}, below the {threshold:.2f} needed)"
