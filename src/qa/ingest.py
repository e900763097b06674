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


@dataclass(frozen=True)
class SourceFile:
    """A file found under one of the roots: where it is and the name it is cited by."""

    path: Path
    source: str


def discover(roots: list[Path]) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Every supported file under ``roots``, plus (name, reason) for what was passed over.

    Folders are walked without following folder links, so link loops cannot trap the walk.
    A file is cited by its path relative to the folder it was found in.
    """
    found: dict[str, SourceFile] = {}
    passed: list[tuple[str, str]] = []
    for root in roots:
        if not root.exists():
            passed.append((str(root), "does not exist"))
            continue
        if root.is_file():
            _add(found, passed, root, root.name)
            continue
        for folder, dirs, files in os.walk(root, followlinks=False, onerror=None):
            dirs.sort()
            for d in dirs:
                if (Path(folder) / d).is_symlink():
                    passed.append(((Path(folder) / d).relative_to(root).as_posix(), "folder link not followed"))
            for name in sorted(files):
                path = Path(folder) / name
                if name.startswith("."):
                    continue
                _add(found, passed, path, path.relative_to(root).as_posix())
    return sorted(found.values(), key=lambda f: f.source), passed


def _add(found: dict[str, SourceFile], passed: list[tuple[str, str]], path: Path, source: str) -> None:
    if path.suffix.lower() not in SUPPORTED:
        passed.append((source, f"unsupported type {path.suffix or '(no extension)'!r}; qa reads .txt, .md and .pdf"))
        return
    if not path.exists():
        passed.append((source, "is a broken link"))
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
            raise IngestError(
                f"{file.source}: file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit; "
                "raise it with --max-file-mb"
            )
        return file.path.read_bytes()
    except OSError as exc:
        raise IngestError(
            f"{file.source}: cannot be read ({exc.strerror or exc}); check that it exists and its permissions"
        ) from None


def parse_document(file: SourceFile, data: bytes) -> tuple[Document, list[str]]:
    """The Document in ``data``, with warnings; IngestError when it cannot be used."""
    doc_id = file_hash(data)[:16]
    kind = file.path.suffix.lower().lstrip(".")
    if kind == "pdf":
        text, page_starts, warnings, title = _read_pdf(file.source, data)
    else:
        text, warnings = _decode_text(file.source, data), []
        page_starts = []
        title = _markdown_title(text) if kind == "md" else ""
    if not text.strip():
        hint = " (image-only PDF? run OCR on it first)" if kind == "pdf" else ""
        warnings.append(f"no text could be extracted{hint}")
    title = title or _title_from_name(file.path)
    return Document(doc_id, file.source, title, text, kind, tuple(page_starts)), warnings


def read_document(file: SourceFile, max_bytes: int) -> tuple[Document, list[str]]:
    """Read and parse one file; IngestError when it cannot be used."""
    return parse_document(file, read_bytes(file, max_bytes))


def _decode_text(source: str, data: bytes) -> str:
    if b"\x00" in data[:65536]:
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
    sample = text[:65536]
    if sample and len(_BINARY_CONTROL.findall(sample)) > 0.01 * len(sample):
        raise IngestError(f"{source}: looks like a binary file, not text; remove it or give it the right extension")
    return text


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
    for number in range(count):
        try:
            page_text = pages[number].extract_text() or ""
        except Exception as exc:  # pypdf raises many kinds on damaged pages; one page must not sink the file
            warnings.append(f"page {number + 1}: text not extractable ({_one_line(exc)})")
            page_text = ""
        texts.append(page_text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", ""))
    starts, offset = [], 0
    for page_text in texts:
        starts.append(offset)
        offset += len(page_text) + len(PAGE_SEPARATOR)
    empty = [str(i + 1) for i, t in enumerate(texts) if not t.strip()]
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
