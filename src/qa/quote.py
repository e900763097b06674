"""Where does a quote come from? Exact matches, then normalised ones, then close (fuzzy) ones.

Normalised matching ignores case, runs of white space and line breaks, curly versus straight
quotes, kinds of dashes, and words hyphenated at a line end, so a sentence copied out of a PDF is
found even when the PDF's text breaks its lines elsewhere. The normalised text keeps a map back
to the original offsets, so every match is cited by its true span in the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .cite import make_citation
from .errors import InputError
from .index import Index
from .lexical import terms
from .types import QuoteMatch

MAX_QUOTE_CHARS = 5000
FUZZY_CANDIDATES = 30
# Quotes up to this long are aligned by rapidfuzz's partial ratio; longer ones by their LCS.
PARTIAL_RATIO_CHARS = 300
EDGE_CHARS = 120
_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u00a0": " ",
        "\u00ad": "",
        # Typographic ligatures, which PDFs keep as one character: "misﬁts" reads "misfits".
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
    }
)
_QUOTE_MARKS = "\"'\u2018\u2019\u201c\u201d\u00ab\u00bb"


@dataclass(frozen=True)
class Folded:
    """Normalised text and, for each of its characters, the offset it came from."""

    text: str
    origin: np.ndarray

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original (start, end) of the normalised range [start, end)."""
        return int(self.origin[start]), int(self.origin[end - 1]) + 1


def fold(text: str) -> Folded:
    """Lower-case, straight quotes, one kind of dash, single spaces, line-end hyphens joined."""
    out: list[str] = []
    origin: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "-" or ch in "\u2010\u00ad":
            # "defen-\nse" -> "defense": a hyphen (or soft hyphen) at a line end joins the word.
            j = i + 1
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == "\n" and out and out[-1].isalpha():
                k = j
                while k < n and text[k].isspace():
                    k += 1
                if k < n and text[k].islower():
                    i = k
                    continue
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
                origin.append(i)
            i += 1
            continue
        folded = ch.translate(_FOLD)
        if not folded:
            i += 1
            continue
        low = folded.lower()
        folded = low if len(low) == len(folded) else folded
        if folded.isspace():
            if out and out[-1] != " ":
                out.append(" ")
                origin.append(i)
        else:
            out.extend(folded)
            origin.extend([i] * len(folded))
        i += 1
    while out and out[-1] == " ":
        out.pop()
        origin.pop()
    return Folded("".join(out), np.asarray(origin, dtype=np.int32))


@lru_cache(maxsize=512)
def _folded_document(doc_id: str, text: str) -> Folded:
    return fold(text)


def find_quote(index: Index, quote: str, limit: int = 20, min_similarity: float = 0.75) -> list[QuoteMatch]:
    """Every place ``quote`` occurs in the indexed sources: exact, then normalised, then fuzzy."""
    if not isinstance(quote, str) or not quote.strip():
        raise InputError("the quote is empty; paste the text to look for")
    if len(quote) > MAX_QUOTE_CHARS:
        raise InputError(f"the quote is {len(quote):,} characters long; the limit is {MAX_QUOTE_CHARS:,}")
    needle = quote.strip()
    matches: list[QuoteMatch] = []
    taken: set[tuple[int, int, int]] = set()
    # A quote pasted with its quotation marks is looked for with them, then without.
    quoted = needle[0] in _QUOTE_MARKS and needle[-1] in _QUOTE_MARKS
    bare = (needle.strip(_QUOTE_MARKS).strip() if quoted else "") or needle
    for text in dict.fromkeys((needle, bare)):
        for row in index.document_rows():
            doc = index.document(row).document
            at = doc.text.find(text)
            while at >= 0 and len(matches) < limit:
                if not _overlaps(taken, row, at, at + len(text)):
                    matches.append(QuoteMatch(make_citation(doc, at, at + len(text)), text, "exact", 1.0))
                    taken.add((row, at, at + len(text)))
                at = doc.text.find(text, at + 1)
    needle = bare
    folded_needle = fold(needle).text
    if folded_needle:
        for row in index.document_rows():
            if len(matches) >= limit:
                break
            doc = index.document(row).document
            folded = _folded_document(doc.doc_id, doc.text)
            at = folded.text.find(folded_needle)
            while at >= 0 and len(matches) < limit:
                start, end = folded.span(at, at + len(folded_needle))
                if not _overlaps(taken, row, start, end):
                    matches.append(QuoteMatch(make_citation(doc, start, end), doc.text[start:end], "normalized", 1.0))
                    taken.add((row, start, end))
                at = folded.text.find(folded_needle, at + 1)
    if len(matches) < limit:
        matches += _fuzzy(index, needle, folded_needle, taken, limit - len(matches), min_similarity)
    return matches


def _overlaps(taken: set[tuple[int, int, int]], row: int, start: int, end: int) -> bool:
    return any(r == row and start < b and a < end for r, a, b in taken)


def _fuzzy(
    index: Index, needle: str, folded_needle: str, taken: set[tuple[int, int, int]], limit: int, min_similarity: float
) -> list[QuoteMatch]:
    """Close matches inside the chunks that share the most words with the quote (BM25 picks them)."""
    words = terms(needle)
    if not words or not folded_needle:
        return []
    scores = index.lexical.scores(words)
    order = np.argsort(-scores)[:FUZZY_CANDIDATES]
    found: list[QuoteMatch] = []
    for chunk in index.chunks([int(c) for c in order if scores[c] > 0]):
        stored = index.document_of(chunk)
        doc = stored.document
        folded = _folded_document(doc.doc_id, doc.text)
        # The chunk, widened by the quote's length so a quote that crosses its edge still aligns whole.
        lo = int(np.searchsorted(folded.origin, chunk.start - len(needle)))
        hi = int(np.searchsorted(folded.origin, chunk.end + len(needle)))
        if hi <= lo:
            continue
        aligned = _align(folded_needle, folded.text[lo:hi])
        if aligned is None or aligned[0] < min_similarity:
            continue
        similarity, dest_start, dest_end = aligned
        start, end = folded.span(lo + dest_start, lo + dest_end)
        start, end = _snap(doc.text, start, end)
        if _overlaps(taken, stored.row, start, end):
            continue
        taken.add((stored.row, start, end))
        found.append(QuoteMatch(make_citation(doc, start, end), doc.text[start:end], "fuzzy", round(similarity, 4)))
    found.sort(key=lambda m: -m.similarity)
    return found[:limit]


def _align(needle: str, text: str) -> tuple[float, int, int] | None:
    """(similarity, start, end) of the part of ``text`` most like ``needle``, or None.

    Short quotes take rapidfuzz's best partial alignment. Its time grows with the square of the
    quote's length (2 s for one 4,000-character quote against one chunk), so a longer quote is
    first placed by its longest common subsequence with the text (a bit-parallel pass that takes
    milliseconds), and then each end is found exactly by aligning the quote's first and last
    ``EDGE_CHARS`` characters near where that places them.
    """
    from rapidfuzz import fuzz
    from rapidfuzz.distance import LCSseq

    if len(needle) <= PARTIAL_RATIO_CHARS:
        aligned = fuzz.partial_ratio_alignment(needle, text)
        if aligned is None or aligned.dest_end <= aligned.dest_start:
            return None
        return _refine(needle, text, aligned.dest_start, aligned.dest_end)
    runs = [op for op in LCSseq.opcodes(needle, text) if op.tag == "equal" and op.dest_end - op.dest_start >= 4]
    if not runs:
        return None
    slack = max(50, len(needle) // 10)  # how far insertions and deletions may move an end
    head_at = _shift(runs, 0, 2 * EDGE_CHARS)
    tail_at = _shift(runs, len(needle) - 2 * EDGE_CHARS, len(needle)) + len(needle)
    lo = max(0, head_at - slack)
    head = fuzz.partial_ratio_alignment(needle[:EDGE_CHARS], text[lo : head_at + EDGE_CHARS + slack])
    hi = max(0, tail_at - EDGE_CHARS - slack)
    tail = fuzz.partial_ratio_alignment(needle[-EDGE_CHARS:], text[hi : tail_at + slack])
    if head is None or tail is None:  # an edge with nothing in common
        return None
    start, end = lo + head.dest_start, hi + tail.dest_end
    if end <= start:
        return None
    return fuzz.ratio(needle, text[start:end]) / 100.0, start, end


def _refine(needle: str, text: str, start: int, end: int) -> tuple[float, int, int]:
    """The span near ``start:end`` most like the whole of ``needle``, its ends at word edges.

    A partial alignment compares windows of the quote's own length, so a quote with letters left
    out ("revison", "promply") is matched by a window that starts a word or two early; moving each
    end over the nearby word edges and keeping the most similar span puts it where the quote is.
    """
    from rapidfuzz import fuzz

    slack = max(12, len(needle) // 4)
    starts = {start} | {
        i for i in range(max(0, start - slack), min(len(text), start + slack)) if i == 0 or text[i - 1].isspace()
    }
    ends = {end} | {
        i for i in range(max(1, end - slack), min(len(text), end + slack) + 1) if i == len(text) or text[i].isspace()
    }
    best = (fuzz.ratio(needle, text[start:end]), start, end)
    for a in sorted(starts):
        for b in sorted(ends):
            if b > a and (score := fuzz.ratio(needle, text[a:b])) > best[0]:
                best = (score, a, b)
    return best[0] / 100.0, best[1], best[2]


def _shift(runs: list, src_lo: int, src_hi: int) -> int:  # type: ignore[type-arg]
    """Where the quote's characters ``src_lo:src_hi`` sit in the text, by their common stretches.

    The weighted median of the stretches' shifts: stretches that matched by chance elsewhere
    ("the ", "tion") have other shifts and are outvoted. All stretches count when none is in range.
    """
    chosen = [op for op in runs if op.src_end > src_lo and op.src_start < src_hi] or runs
    shifts = np.array([op.dest_start - op.src_start for op in chosen])
    weights = np.array([op.src_end - op.src_start for op in chosen])
    order = np.argsort(shifts)
    middle = np.searchsorted(np.cumsum(weights[order]), weights.sum() / 2)
    return int(shifts[order][min(middle, len(order) - 1)])


def _snap(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span to whole words, without white space at either end."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return start, end
