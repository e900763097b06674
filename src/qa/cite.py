"""Citation ids: making them, parsing them, resolving them to a passage in context.

An id is ``<first 12 hex digits of the file's content hash>:<start>-<end>``, character offsets into
the document's text. It depends only on the file's content and the span, so it still resolves after
the index is rebuilt, as long as the same file is indexed.
"""

from __future__ import annotations

import re

from .errors import CitationError
from .index import Index
from .types import Citation, Document, Passage

ID_DIGITS = 12
# Hex digits in either case: ids are printed in lower case, but one retyped or copied from a
# tool that upper-cases hex is the same id.
_ID = re.compile(rf"([0-9a-fA-F]{{{ID_DIGITS}}}):(\d{{1,12}})-(\d{{1,12}})")


def citation_id(doc_id: str, start: int, end: int) -> str:
    return f"{doc_id[:ID_DIGITS]}:{start}-{end}"


def make_citation(doc: Document, start: int, end: int) -> Citation:
    return Citation(citation_id(doc.doc_id, start, end), doc.source, start, end, doc.page_at(start))


def parse_citation_id(text: str) -> tuple[str, int, int]:
    """(document hash prefix, start, end) of a citation id; CitationError when malformed."""
    if not isinstance(text, str):
        raise CitationError(f"a citation id is text such as '3f2a9b1c0d4e:120-245', not {type(text).__name__} {text!r}")
    cleaned = text.strip().strip("[]")
    match = _ID.fullmatch(cleaned)
    if match is None:
        shown = cleaned[:60] + ("…" if len(cleaned) > 60 else "")
        raise CitationError(
            f"{shown!r} is not a citation id; ids look like 3f2a9b1c0d4e:120-245 (copy one from an answer)"
        )
    start, end = int(match.group(2)), int(match.group(3))
    if end <= start:
        raise CitationError(f"citation {cleaned!r} has an empty span ({start}-{end}); the end must follow the start")
    return match.group(1).lower(), start, end


def resolve(index: Index, text: str, context: int = 300) -> Passage:
    """The passage a citation id points to, with up to ``context`` characters either side."""
    prefix, start, end = parse_citation_id(text)
    row = None
    for candidate in index.rows_with_prefix(prefix):
        row = candidate
        break
    if row is None:
        raise CitationError(
            f"citation {prefix}:{start}-{end} names a document that is not in this index "
            "(it was changed or removed since the citation was made); ask the question again"
        )
    doc = index.document(row).document
    if end > len(doc.text):
        raise CitationError(
            f"citation {prefix}:{start}-{end} points past the end of {doc.source} ({len(doc.text)} characters)"
        )
    before_start = _boundary(doc.text, max(0, start - context), forward=True)
    after_end = _boundary(doc.text, min(len(doc.text), end + context), forward=False)
    return Passage(
        make_citation(doc, start, end),
        doc.text[start:end],
        doc.text[before_start:start],
        doc.text[end:after_end],
        doc.title,
    )


def _boundary(text: str, at: int, forward: bool) -> int:
    """Move ``at`` to a nearby word boundary so context does not start or end mid-word."""
    if at <= 0 or at >= len(text):
        return at
    step = 1 if forward else -1
    limit = 40
    while 0 < at < len(text) and limit and not text[at - 1].isspace():
        at += step
        limit -= 1
    return at
