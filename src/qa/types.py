"""The data that flows between stages: frozen dataclasses, offsets into source text."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One source file as text.

    ``doc_id`` is a hash of the file's bytes, so it stays the same when an unchanged file is
    indexed again. ``page_starts[i]`` is the character offset where page ``i + 1`` begins
    (empty for files without pages).
    """

    doc_id: str
    source: str
    title: str
    text: str
    kind: str
    page_starts: tuple[int, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character ``offset``, or None for files without pages."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))


@dataclass(frozen=True)
class Sentence:
    """A sentence of a document: ``text == document.text[start:end]``.

    The chunker makes it, the build writes it and the index reads it back as the same record.
    Read back, ``row`` is its row in the index and ``doc_row`` its document's (``Index.document``);
    both are None until then, and writing ignores them.
    """

    doc_id: str
    start: int
    end: int
    page: int | None
    tokens: int
    row: int | None = None
    doc_row: int | None = None


@dataclass(frozen=True)
class Chunk:
    """A run of whole sentences ``sentences[first:last]`` of one document, embedded as one unit.

    ``first`` and ``last`` count the document's own sentences from 0, read back from an index too
    (``Index.sentence_rows`` gives their rows there); ``row`` and ``doc_row`` as for ``Sentence``.
    """

    doc_id: str
    start: int
    end: int
    page: int | None
    first: int
    last: int
    tokens: int
    row: int | None = None
    doc_row: int | None = None


@dataclass(frozen=True)
class Citation:
    """Where a snippet comes from: ``source`` text ``[start:end]`` (and its page for PDFs)."""

    id: str
    source: str
    start: int
    end: int
    page: int | None = None

    def __str__(self) -> str:
        page = f", p. {self.page}" if self.page is not None else ""
        return f"{self.source}{page}, chars {self.start}-{self.end} [{self.id}]"


@dataclass(frozen=True)
class Snippet:
    """Verbatim source text with its citation and the score that ranked it."""

    text: str
    citation: Citation
    score: float


@dataclass(frozen=True)
class Answer:
    """The reply to one question.

    When ``abstained`` is false, ``snippets[0]`` is the answer and the rest support it; ``phrase``,
    when there is one, is the exact answer inside ``snippets[0]`` (its own verbatim text and
    citation). When it is true, ``snippets`` is empty, ``reason`` says why and ``related`` holds the
    closest passages. ``confidence`` is the one calibrated number every output shows: the
    probability that the answer is right (see README, "Confidence"). ``scorer`` names what judged it.
    """

    question: str
    snippets: tuple[Snippet, ...]
    abstained: bool
    reason: str = ""
    related: tuple[Snippet, ...] = ()
    confidence: float = 0.0
    phrase: Snippet | None = None
    scorer: str = "none"
    # The question's names and codes that occur nowhere in the sources. Set on an answer too: a
    # sentence can give the kind of fact asked (a height) about something else (see README).
    missing_terms: tuple[str, ...] = ()

    @property
    def best(self) -> Snippet | None:
        return self.snippets[0] if self.snippets else None


@dataclass(frozen=True)
class Passage:
    """A cited span shown in its context: ``before + text + after`` is contiguous source text."""

    citation: Citation
    text: str
    before: str
    after: str
    title: str


@dataclass(frozen=True)
class QuoteMatch:
    """A place where a quote occurs: ``kind`` is exact, normalized or fuzzy."""

    citation: Citation
    text: str
    kind: str
    similarity: float


def unmentioned_note(terms: list[str] | tuple[str, ...]) -> str:
    """What an answer shows when the question names something the sources never mention."""
    names = ", ".join(f"'{t}'" for t in terms)
    return f"the sources never mention {names}: check that this answers what you asked"


# How the error of a file `add` was given and could not index ends: kept where it was (in the corpus
# folder already), or its copy removed again.
NOT_ADDED = ("; not added", "; not added (its copy was removed again)")


@dataclass(frozen=True)
class FileReport:
    """What the build did with one file."""

    source: str
    status: str  # indexed | unchanged | skipped | removed
    pages: int = 0
    chars: int = 0
    sentences: int = 0
    chunks: int = 0
    warnings: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class BuildReport:
    """What a build did, file by file."""

    files: tuple[FileReport, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    embedded_chunks: int = 0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)
