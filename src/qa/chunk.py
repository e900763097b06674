"""Document -> sentences -> chunks, every one a character span of the document's text.

Sentences come from pysbd (rule-based, handles "U.S.", "Dr.", "e.g." and decimals: see
``benchmarks/sentence_splitters.py`` for the comparison that chose it). Chunks are runs of whole
sentences that fit the embedding model's token limit, counted with the model's own tokenizer, and
overlap by whole sentences.

The cost of a sentence is bounded: a block of text is cut before about ``MAX_BLOCK_CHARS``
(at a sentence end where there is one), and a sentence longer than ``MAX_SENTENCE_CHARS`` (text
without punctuation) is cut at white space, so one long line costs time and memory in proportion
to its length, like any other text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from .types import Chunk, Document, Sentence

_NEWLINES = re.compile(r"\n+")
_BLANK_LINES = re.compile(r"\n\s*\n")
_LINE_BREAK = re.compile(r"(?<!\n)\n(?!\n)")
# pysbd sees at most this much text at once; its regexes copy their input several times over.
MAX_BLOCK_CHARS = 20_000
# Longer "sentences" (no punctuation for pages on end) are cut at white space: four times more
# characters than a full 200-token chunk usually holds, so real sentences are never cut here.
MAX_SENTENCE_CHARS = 4_000
# The last sentence end, or white space, in a stretch: the greedy ``.*`` finds it from the end.
_LAST_SENTENCE_END = re.compile(r"(?s:.*)[.!?…][\"'”’)\]]*\s")
_LAST_SPACE = re.compile(r"(?s:.*)\s")
# Token counts are asked for this many sentences at a time, so their encodings never pile up.
COUNT_BATCH = 2_000


class Tokenizer(Protocol):
    """Counts and locates the model's tokens, so nothing is truncated silently."""

    max_tokens: int

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, without the model's special tokens."""
        ...

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text``."""
        ...


@lru_cache(maxsize=1)
def _segmenter():  # type: ignore[no-untyped-def]
    import pysbd
    from pysbd.lang.english import English

    class AbbreviationReplacer(English.AbbreviationReplacer):  # type: ignore[misc]  # pysbd is untyped
        def search_for_abbreviations_in_string(self, text: str) -> str:
            # pysbd's own loop, less its slow part: it ran a regex over every line for each of its
            # 188 abbreviations that occur anywhere in the line ("a" in "and"), though each of them
            # only changes text where the abbreviation is followed by a period. Lines without that
            # are now skipped by one precompiled search, with the same sentences (tests/test_chunk.py).
            lowered = text.lower()
            for abbr in self.lang.Abbreviation.ABBREVIATIONS:
                stripped = abbr.strip()
                if stripped not in lowered or not _abbreviation_then_period(stripped).search(text):
                    continue
                abbrev_match = re.findall(rf"(?:^|\s|\r|\n){stripped}", text, flags=re.IGNORECASE)
                if not abbrev_match:
                    continue
                char_array = re.findall(r"(?<={" + str(re.escape(stripped)) + "} ).{1}", text)
                for ind, match in enumerate(abbrev_match):
                    text = self.scan_for_replacements(text, match, ind, char_array)
            return text

    class FasterEnglish(English):  # type: ignore[misc]
        pass

    FasterEnglish.AbbreviationReplacer = AbbreviationReplacer
    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=False)
    segmenter.language_module = FasterEnglish
    return segmenter


@lru_cache(maxsize=512)
def _abbreviation_then_period(abbr: str) -> re.Pattern[str]:
    # Unescaped like pysbd's own patterns, so "e.g" also matches wherever pysbd's would.
    return re.compile(abbr + r"\.", re.IGNORECASE)


def _sentences(block: str) -> list[str]:
    """pysbd's sentences of ``block``, located by the caller.

    ``Segmenter.segment`` would also find each sentence again with a freshly compiled regex, which
    took a third of the splitting time; ``split_sentences`` finds them with ``str.find`` instead.
    """
    return _segmenter().processor(block).process() if block else []


def _segmentation_view(text: str, kind: str) -> str:
    """Text of the same length in which line breaks inside a sentence are spaces.

    PDFs break lines inside sentences, so there only blank lines separate blocks. In text and
    Markdown a line break ends a block unless the next line plainly continues (starts lowercase).
    """
    if kind == "pdf":
        return _LINE_BREAK.sub(" ", text)
    return _LINE_BREAK.sub(lambda m: " " if m.string[m.end() : m.end() + 1].islower() else "\n", text)


def _blocks(view: str, kind: str) -> list[tuple[int, int]]:
    splitter = _BLANK_LINES if kind == "pdf" else _NEWLINES
    spans, start = [], 0
    for match in splitter.finditer(view):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(view)))
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if view[a:b].strip():
            out += _cut(view, a, b, MAX_BLOCK_CHARS, sentences=True)
    return out


def _cut(text: str, start: int, end: int, limit: int, sentences: bool) -> list[tuple[int, int]]:
    """``[start, end)`` in pieces of at most ``limit`` characters, each cut after the last sentence
    end in it (with ``sentences``), else after its last white space, else at the limit."""
    pieces = []
    while end - start > limit:
        found = (sentences and _LAST_SENTENCE_END.match(text, start, start + limit)) or _LAST_SPACE.match(
            text, start, start + limit
        )
        cut = found.end() if found else start + limit
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def split_sentences(doc: Document) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``doc``, in order, covering all its non-space text."""
    view = _segmentation_view(doc.text, doc.kind)
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _blocks(view, doc.kind):
        block = view[block_start:block_end]
        cursor = 0
        for piece in _sentences(block):
            piece = piece.strip()
            if not piece:
                continue
            at = block.find(piece, cursor)
            if at < 0:  # the segmenter changed the text: keep what is left as one span
                continue
            if block[cursor:at].strip():
                spans.append(_trim(view, block_start + cursor, block_start + at))
            spans.append((block_start + at, block_start + at + len(piece)))
            cursor = at + len(piece)
        if block[cursor:].strip():
            spans.append(_trim(view, block_start + cursor, block_end))
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if b - a <= MAX_SENTENCE_CHARS:
            out.append((a, b))
        else:  # no punctuation for pages on end: cut at white space
            pieces = (_trim(view, pa, pb) for pa, pb in _cut(view, a, b, MAX_SENTENCE_CHARS, sentences=False))
            out += [p for p in pieces if p[1] > p[0]]
    return out


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long(text: str, start: int, end: int, limit: int, tokenizer: Tokenizer) -> list[tuple[int, int]]:
    """Cut a span longer than ``limit`` tokens at token boundaries into pieces that fit."""
    spans = tokenizer.spans(text[start:end])
    pieces = []
    for i in range(0, len(spans), limit):
        window = spans[i : i + limit]
        piece_end = spans[i + limit][0] if i + limit < len(spans) else end - start
        pieces.append(_trim(text, start + window[0][0], start + piece_end))
    return [p for p in pieces if p[1] > p[0]]


def title_prefix(doc: Document, with_title: bool) -> str:
    """What is put before a chunk's text when it is embedded and searched."""
    return f"{doc.title}\n" if with_title and doc.title else ""


def chunk_document(
    doc: Document,
    tokenizer: Tokenizer,
    chunk_tokens: int,
    overlap: int,
    with_title: bool,
    spans: list[tuple[int, int]] | None = None,
) -> tuple[list[Sentence], list[Chunk]]:
    """Sentences and chunks of one document.

    A chunk holds whole sentences and, with its title prefix, fits both ``chunk_tokens`` and the
    model's limit. A sentence longer than that is cut at token boundaries first. The next chunk
    starts with the last sentences of the previous one, up to ``overlap`` tokens. ``spans``: the
    document's ``split_sentences``, when already known.
    """
    text = doc.text
    prefix = title_prefix(doc, with_title)
    prefix_tokens = tokenizer.count([prefix])[0] if prefix else 0
    budget = max(8, min(chunk_tokens, tokenizer.max_tokens) - prefix_tokens)
    spans = split_sentences(doc) if spans is None else spans
    counts: list[int] = []
    for at in range(0, len(spans), COUNT_BATCH):
        counts += tokenizer.count([text[a:b] for a, b in spans[at : at + COUNT_BATCH]])
    fitted: list[tuple[int, int, int]] = []
    for (a, b), n in zip(spans, counts, strict=True):
        if n <= budget:
            fitted.append((a, b, n))
            continue
        pieces = _split_long(text, a, b, budget, tokenizer)
        for (pa, pb), pn in zip(pieces, tokenizer.count([text[pa:pb] for pa, pb in pieces]), strict=True):
            fitted.append((pa, pb, pn))
    sentences = [Sentence(doc.doc_id, a, b, doc.page_at(a), n) for a, b, n in fitted]
    return sentences, _pack(doc, sentences, budget, overlap)


def _pack(doc: Document, sentences: list[Sentence], budget: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    first = 0
    while first < len(sentences):
        last, used = first, 0
        # Whole sentences joined by one space each measure at most the sum of their tokens.
        while last < len(sentences) and used + sentences[last].tokens <= budget:
            used += sentences[last].tokens
            last += 1
        last = max(last, first + 1)
        chunks.append(
            Chunk(doc.doc_id, sentences[first].start, sentences[last - 1].end, sentences[first].page, first, last, used)
        )
        if last >= len(sentences):
            break
        back, kept = last, 0
        while back - 1 > first and kept + sentences[back - 1].tokens <= overlap:
            back -= 1
            kept += sentences[back].tokens
        first = back
    return chunks
