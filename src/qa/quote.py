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
    }
)


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
    folded_needle = fold(needle).text
    matches: list[QuoteMatch] = []
    taken: set[tuple[int, int, int]] = set()
    for row in index.document_rows():
        doc = index.document(row).document
        at = doc.text.find(needle)
        while at >= 0 and len(matches) < limit:
            matches.append(QuoteMatch(make_citation(doc, at, at + len(needle)), needle, "exact", 1.0))
            taken.add((row, at, at + len(needle)))
            at = doc.text.find(needle, at + 1)
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
    from rapidfuzz import fuzz

    words = terms(needle)
    if not words or not folded_needle:
        return []
    scores = index.lexical.scores(words)
    order = np.argsort(-scores)[:FUZZY_CANDIDATES]
    found: list[QuoteMatch] = []
    for chunk in index.chunks([int(c) for c in order if scores[c] > 0]):
        doc = index.document(chunk.doc).document
        # Widen the chunk a little so a quote that crosses its edge can still align whole.
        lo = max(0, chunk.start - len(needle))
        hi = min(len(doc.text), chunk.end + len(needle))
        folded = fold(doc.text[lo:hi])
        if not folded.text:
            continue
        aligned = fuzz.partial_ratio_alignment(folded_needle, folded.text)
        similarity = aligned.score / 100.0
        if similarity < min_similarity or aligned.dest_end <= aligned.dest_start:
            continue
        start, end = folded.span(aligned.dest_start, aligned.dest_end)
        start, end = _snap(doc.text, lo + start, lo + end)
        if _overlaps(taken, chunk.doc, start, end):
            continue
        taken.add((chunk.doc, start, end))
        found.append(QuoteMatch(make_citation(doc, start, end), doc.text[start:end], "fuzzy", round(similarity, 4)))
    found.sort(key=lambda m: -m.similarity)
    return found[:limit]


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
