"""Files -> Documents: .txt and .md as decoded text, .pdf page by page with page offsets.

The text of a Document is what citations point into. It is the file's text as Python reads it
(BOM dropped, line endings turned into ``\\n``); for PDFs it is pypdf's text of each page, pages
joined by a blank line, with the offset where each page starts kept in ``page_starts``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import IngestError
from .types import Document

SUPPORTED = (".txt", ".md", ".pdf")
PAGE_SEPARATOR = "\n\n"
_BINARY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")
# Text is binary where more than 1% of a window this long is control characters.
BINARY_WINDOW = 65536
# What a PDF font without a Unicode map turns its glyphs into: control and private-use
# characters, and U+FFFD. A page more than this share of them has an unreadable text layer.
_JUNK = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd\U000f0000-\U0010ffff]")
UNREADABLE_SHARE = 0.3
FOLLOW_HINT = "qa index --follow-links follows it"


@dataclass(frozen=True)
class SourceFile:
    """A file found under one of the roots: where it is and the name it is cited by."""

    path: Path
    source: str


def megabytes(size: float) -> str:
    """A size in MB, as the --max-file-mb flag takes it, with the digits it needs: 52.4 MB, 1 MB,
    0.0069 MB."""
    mb = size / 1e6
    if mb >= 1000:
        return f"{mb:,.0f} MB"
    return (f"{mb:.3g}" if mb >= 1 else f"{float(f'{mb:.2g}'):f}".rstrip("0").rstrip(".")) + " MB"


def over_limit(size: int, limit: float) -> str:
    """'file is 52.4 MB, over the 50 MB limit', in bytes where MB would round it to the limit."""
    if megabytes(size) == megabytes(limit):
        return f"file is {size:,} bytes, over the {int(limit):,}-byte limit"
    return f"file is {megabytes(size)}, over the {megabytes(limit)} limit"


def discover(
    roots: list[Path], follow_links: bool = False, leave_out: Path | None = None
) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Every supported file under ``roots``, plus (name, reason) for what was passed over;
    nothing under ``leave_out`` (the index folder, when it sits inside a corpus folder).

    A link is followed only where it leads inside one of the roots, so a link in the corpus
    cannot bring in a file from elsewhere on the machine (``/etc/passwd``); folder links are not
    followed, so link loops cannot trap the walk. ``follow_links`` follows every link (each
    folder once). A file is cited by its path relative to the folder it was found in.
    """
    found: dict[str, SourceFile] = {}
    passed: list[tuple[str, str]] = []
    inside = [r.resolve() for r in roots if r.exists()]
    for root in roots:
        if not root.exists():
            passed.append((str(root), "is a broken link" if root.is_symlink() else "does not exist"))
            continue
        if root.is_file():  # named on its own: followed, wherever it leads
            _add(found, passed, root, root.name, [root.resolve()])
            continue
        seen: set[Path] = set()
        for folder, dirs, files in os.walk(root, followlinks=follow_links, onerror=None):
            here = Path(folder)
            if follow_links:
                real = here.resolve()
                if real in seen:  # a link loop, or a folder reached twice
                    dirs.clear()
                    continue
                seen.add(real)
            if leave_out is not None:
                dirs[:] = [d for d in dirs if (here / d).resolve() != leave_out]
            dirs.sort()
            for d in dirs:
                if not follow_links and (here / d).is_symlink():
                    name = (here / d).relative_to(root).as_posix()
                    passed.append((name, f"folder link not followed ({FOLLOW_HINT})"))
            for name in sorted(files):
                path = here / name
                if name.startswith("."):
                    continue
                _add(found, passed, path, path.relative_to(root).as_posix(), None if follow_links else inside)
    return sorted(found.values(), key=lambda f: f.source), passed


def _add(
    found: dict[str, SourceFile],
    passed: list[tuple[str, str]],
    path: Path,
    source: str,
    inside: list[Path] | None,
) -> None:
    """Add ``path`` unless it is unsupported, broken, or (``inside`` given) leads outside those folders."""
    if path.suffix.lower() not in SUPPORTED:
        passed.append((source, f"unsupported type {path.suffix or '(no extension)'!r}; qa reads .txt, .md and .pdf"))
        return
    if not path.exists():
        passed.append((source, "is a broken link"))
        return
    if inside is not None:
        target = path.resolve()
        if not any(target.is_relative_to(root) for root in inside):
            passed.append((source, f"is a link to a file outside the indexed folders, not followed ({FOLLOW_HINT})"))
            return
    if source in found and found[source].path.resolve() == path.resolve():
        return
    base, n = source, 2
    while source in found:  # the same name under two roots: keep both, under distinct names
        source = f"{base} ({n})"
        n += 1
    found[source] = SourceFile(path, source)


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(file: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes; IngestError when it is empty, too large or unreadable."""
    try:
        size = file.path.stat().st_size
        if size == 0:
            raise IngestError(f"{file.source}: file is empty; add text to it or remove it")
        if size > max_bytes:
            raise IngestError(f"{file.source}: {over_limit(size, max_bytes)}; raise it with --max-file-mb")
        return file.path.read_bytes()
    except OSError as exc:
        raise IngestError(
            f"{file.source}: cannot be read ({exc.strerror or exc}); check that it exists and its permissions"
        ) from None


def parse_document(file: SourceFile, data: bytes) -> tuple[Document, list[str]]:
    """The Document in ``data``, with warnings; IngestError, with the reason, when it cannot be used."""
    doc_id = file_hash(data)[:16]
    kind = file.path.suffix.lower().lstrip(".")
    if kind == "pdf":
        text, page_starts, warnings, title = _read_pdf(file.source, data)
    else:
        text, warnings = _decode_text(file.source, data)
        page_starts = []
        title = _markdown_title(text) if kind == "md" else ""
    if not text.strip():
        if kind != "pdf":
            raise IngestError(f"{file.source}: holds only white space; add text to it or remove it")
        if any("unreadable" in w for w in warnings):
            raise IngestError(
                f"{file.source}: the PDF's text layer is unreadable on every page with text (its fonts map glyphs to "
                "control or private-use characters); run OCR on it, or export it again with text"
            )
        raise IngestError(f"{file.source}: no text could be extracted (image-only PDF? run OCR on it first)")
    title = title or _title_from_name(file.path)
    return Document(doc_id, file.source, title, text, kind, tuple(page_starts)), warnings


def read_document(file: SourceFile, max_bytes: int) -> tuple[Document, list[str]]:
    """Read and parse one file; IngestError when it cannot be used."""
    return parse_document(file, read_bytes(file, max_bytes))


# Byte-order marks of the encodings other than UTF-8 that a text file names itself (UTF-32 first:
# its little-endian mark starts with UTF-16's).
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _decode_text(source: str, data: bytes) -> tuple[str, list[str]]:
    """The text of ``data`` and warnings; IngestError where any part of it is binary.

    UTF-8 (with or without a byte-order mark), UTF-16 and UTF-32 with one (as Windows tools save
    "Unicode" text), else the encoding charset-normalizer finds."""
    for mark, codec in _BOMS:
        if data.startswith(mark):
            try:
                data = data[len(mark) :].decode(codec).encode("utf-8")
            except UnicodeDecodeError:
                raise IngestError(f"{source}: starts as {codec.upper()} text but is not; save it as UTF-8") from None
            break
    if b"\x00" in data[:BINARY_WINDOW]:
        head = data[:BINARY_WINDOW]
        if _utf16_without_mark(head):
            raise IngestError(f"{source}: looks like UTF-16 text without a byte-order mark; save it as UTF-8")
        raise IngestError(f"{source}: looks like a binary file, not text; remove it or give it the right extension")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise IngestError(f"{source}: text encoding not recognised; save it as UTF-8") from None
        text = str(best)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    _check_not_binary(source, text)
    warnings = []
    nuls = text.count("\x00")
    if nuls:  # a few stray NULs in real text: not text, and nothing a reader could use
        first = text.index("\x00")
        text = text.replace("\x00", "")
        warnings.append(f"{nuls:,} NUL character(s) left out (the first at character {first:,})")
    return text, warnings


def _utf16_without_mark(head: bytes) -> bool:
    """Whether ``head`` reads as UTF-16 text of the Latin alphabet: every other byte NUL, the others
    printable ASCII (a zero-filled or other binary file is not)."""
    for zeros, chars in ((head[1::2], head[0::2]), (head[0::2], head[1::2])):
        if len(chars) >= 8 and zeros.count(0) > 0.9 * len(zeros):
            printable = sum(1 for b in chars if 32 <= b < 127 or b in (9, 10, 13))
            if printable > 0.9 * len(chars):
                return True
    return False


def _check_not_binary(source: str, text: str) -> None:
    """IngestError when any window of the text is more than 1% control characters."""
    limit = 0.01 * min(BINARY_WINDOW, len(text))
    counts: dict[int, int] = {}
    for match in _BINARY_CONTROL.finditer(text):
        window = match.start() // BINARY_WINDOW
        counts[window] = counts.get(window, 0) + 1
        if counts[window] > limit:
            where = "" if window == 0 else f" from character {window * BINARY_WINDOW:,} on"
            raise IngestError(
                f"{source}: looks like a binary file{where}, not text; remove it or give it the right extension"
            )


def _read_pdf(source: str, data: bytes) -> tuple[str, list[int], list[str], str]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{source}: PDF is encrypted with a password; save an unencrypted copy to index it")
        pages = reader.pages
        count = len(pages)
    except IngestError:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise IngestError(
            f"{source}: PDF is encrypted and cannot be opened ({exc}); save an unencrypted copy"
        ) from None
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise IngestError(f"{source}: not a readable PDF ({_one_line(exc)}); re-export or repair it") from None
    texts: list[str] = []
    warnings: list[str] = []
    unreadable: set[int] = set()
    for number in range(count):
        try:
            page_text = pages[number].extract_text() or ""
        except Exception as exc:  # pypdf raises many kinds on damaged pages; one page must not sink the file
            warnings.append(f"page {number + 1}: text not extractable ({_one_line(exc)})")
            page_text = ""
        page_text = page_text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        rest, junk = _JUNK.subn("", page_text)
        share = junk / (junk + len("".join(rest.split()))) if junk else 0.0
        if share > UNREADABLE_SHARE:
            warnings.append(
                f"page {number + 1}: text layer unreadable ({share:.0%} control or private-use characters), left out"
            )
            page_text = ""
            unreadable.add(number)
        texts.append(page_text)
    starts, offset = [], 0
    for page_text in texts:
        starts.append(offset)
        offset += len(page_text) + len(PAGE_SEPARATOR)
    empty = [str(i + 1) for i, t in enumerate(texts) if not t.strip() and i not in unreadable]
    if empty and len(empty) < count:
        warnings.append(f"no text on page(s) {', '.join(empty[:20])}{' …' if len(empty) > 20 else ''}")
    title = ""
    try:
        meta_title = reader.metadata.title if reader.metadata else None
        title = str(meta_title).strip() if meta_title else ""
    except Exception:  # metadata is optional and often damaged
        title = ""
    return PAGE_SEPARATOR.join(texts), starts, warnings, title[:200]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


def _markdown_title(text: str) -> str:
    match = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def _title_from_name(path: Path) -> str:
    return re.sub(r"[_\-]+", " ", path.stem).strip()
