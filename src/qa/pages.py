"""PDF pages as pictures: a cited page rendered with its text highlighted where it is printed.

qa's offsets count characters of pypdf's text of a page; pdfium, which renders the page and knows
where each character sits, has its own text of the same page (other line breaks, ``\\x02`` for a
hyphen at a line end, ligatures, sometimes another reading order). Both texts are reduced to their
letters and digits, folded (NFKC, case), and aligned by longest common subsequence; a range of qa's
text maps to the pdfium characters its letters were aligned with. Where the alignment leaves most
of a range unmatched (columns read in another order), the range's letters are searched for in the
page as one string instead.

pdfium is not thread-safe, so every use of it here holds one lock.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import math
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Range = tuple[int, int]  # start, end: characters of the page's text in qa's offsets
Box = tuple[int, int, int, int]  # left, top, right, bottom: pixels of the page image

# Drawn in order: the first range (the cited sentence) in light yellow, later ones (an answer
# phrase inside it) in a stronger orange with an underline, on top.
MIME = "image/webp"
FILLS = ((255, 214, 10, 90), (255, 140, 0, 110))
UNDERLINE = (214, 90, 0, 255)
MAX_ZOOM = 2.0  # the drawn part of a page is at least half its width
MIN_FOUND = 0.5  # below this share of a range's letters located, the range is not drawn

_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class PageImage:
    """One rendered page: the image (lossless WebP), its size, per range the boxes drawn and share located."""

    data: bytes
    page: int
    pages: int
    width: int
    height: int
    boxes: tuple[tuple[Box, ...], ...]
    found: tuple[float, ...]


def _keys(text: str) -> tuple[str, list[int]]:
    """The letters and digits of ``text``, folded, each with the index of the character it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            if ch.isalnum():
                out.append(ch.lower())
                where.append(i)
            continue
        for c in unicodedata.normalize("NFKC", ch).casefold():
            if c.isalnum():
                out.append(c)
                where.append(i)
    return "".join(out), where


def _key_alignment(ours: str, theirs: str) -> tuple[str, list[int], str, list[int], list[int]]:
    """Both texts' keys with their character indices, and for each key of ours its key in theirs (or -1)."""
    from rapidfuzz.distance import Indel

    a, a_at = _keys(ours)
    b, b_at = _keys(theirs)
    matched = [-1] * len(a)
    for op in Indel.opcodes(a, b):
        if op.tag == "equal":
            for k in range(op.src_end - op.src_start):
                matched[op.src_start + k] = op.dest_start + k
    return a, a_at, b, b_at, matched


def align(ours: str, theirs: str) -> list[int]:
    """For each character of ``ours``, the index of the character of ``theirs`` it matches, or -1."""
    _, a_at, _, b_at, matched = _key_alignment(ours, theirs)
    mapping = [-1] * len(ours)
    for k, m in enumerate(matched):
        if m >= 0 and mapping[a_at[k]] < 0:
            mapping[a_at[k]] = b_at[m]
    return mapping


def locate(ours: str, theirs: str, ranges: Sequence[Range]) -> list[list[int]]:
    """For each range of ``ours``, the sorted indices of the characters of ``theirs`` that print it.

    Where the range's letters occur in ``theirs`` as one run, that run is taken (the one nearest to
    where the alignment put them, if there are several); otherwise the aligned letters are.
    """
    a, a_at, b, b_at, matched = _key_alignment(ours, theirs)
    found: list[list[int]] = []
    for start, end in ranges:
        lo, hi = bisect.bisect_left(a_at, start), bisect.bisect_left(a_at, end)
        aligned = [matched[k] for k in range(lo, hi) if matched[k] >= 0]
        needle = a[lo:hi]
        runs: list[int] = []
        at = b.find(needle) if needle else -1
        while at >= 0 and len(runs) < 50:
            runs.append(at)
            at = b.find(needle, at + 1)
        if runs:
            near = aligned[0] if aligned else 0
            first = min(runs, key=lambda r: abs(r - near))
            keys = range(first, first + len(needle))
        else:
            keys = aligned  # type: ignore[assignment]
        found.append(sorted({b_at[k] for k in keys}))
    return found


def _runs(indices: list[int], gap: int = 8) -> list[tuple[int, int]]:
    """Consecutive runs (first, last) of sorted indices, bridging gaps of spaces and punctuation."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _line_boxes(char_boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Character boxes (device pixels, in reading order) merged into one box per printed line."""
    lines: list[list[float]] = []
    for left, top, right, bottom in char_boxes:
        if lines:
            cur = lines[-1]
            height = max(cur[3] - cur[1], bottom - top, 1.0)
            same_line = abs((top + bottom) / 2 - (cur[1] + cur[3]) / 2) < 0.6 * height
            if same_line and left >= cur[0] - height:
                cur[0], cur[1] = min(cur[0], left), min(cur[1], top)
                cur[2], cur[3] = max(cur[2], right), max(cur[3], bottom)
                continue
        lines.append([left, top, right, bottom])
    return [(a, b, c, d) for a, b, c, d in lines]


def render_page(
    pdf: Path | bytes, page: int, page_text: str, ranges: Sequence[Range] = (), *, width: int = 900
) -> PageImage:
    """Page ``page`` (1-based) of ``pdf`` as an image ``width`` pixels wide, each range highlighted.

    ``page_text`` is qa's text of that page and ``ranges`` are offsets into it: the cited sentence
    first, then any parts of it to stress (an answer phrase), drawn stronger on top.
    """
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as raw
    from PIL import Image, ImageDraw

    with _PDFIUM:
        doc = pdfium.PdfDocument(pdf if isinstance(pdf, bytes) else str(pdf))
        try:
            pages = len(doc)
            if not 1 <= page <= pages:
                raise ValueError(f"page {page} is not in this PDF of {pages} page(s)")
            pdf_page = doc[page - 1]
            page_w, page_h = pdf_page.get_size()
            crop = _margins(pdf_page, page_w, page_h)
            shown_w = max(page_w - crop[0] - crop[2], 1.0)
            scale = width / shown_w
            bitmap = pdf_page.render(scale=scale, crop=crop, may_draw_forms=False)
            image = bitmap.to_pil().convert("RGB")
            textpage = pdf_page.get_textpage()
            count = textpage.count_chars()
            theirs = "".join(chr(raw.FPDFText_GetUnicode(textpage, i) or 0xFFFD) for i in range(count))
            located = locate(page_text, theirs, ranges)
            # The device rectangle is the whole page, shifted by the crop: as pypdfium2 renders it.
            full_x, full_y = math.ceil(page_w * scale), math.ceil(page_h * scale)
            off_x, off_y = -math.ceil(crop[0] * scale), -math.ceil(crop[3] * scale)
            dx, dy = ctypes.c_int(), ctypes.c_int()

            def to_device(x: float, y: float) -> tuple[int, int]:
                raw.FPDF_PageToDevice(pdf_page, off_x, off_y, full_x, full_y, 0, x, y, dx, dy)
                return dx.value, dy.value

            all_boxes: list[tuple[Box, ...]] = []
            for hits in located:
                boxes: list[Box] = []
                for first, last in _runs(hits):
                    chars: list[tuple[float, float, float, float]] = []
                    for i in range(first, last + 1):
                        if raw.FPDFText_IsGenerated(textpage, i) == 1:
                            continue
                        try:
                            left, bottom, right, top = textpage.get_charbox(i, loose=True)
                        except pdfium.PdfiumError:
                            continue
                        if right - left <= 0 or top - bottom <= 0:
                            continue
                        (x0, y0), (x1, y1) = to_device(left, top), to_device(right, bottom)
                        chars.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
                    boxes += [(round(a), round(b), round(c), round(d)) for a, b, c, d in _line_boxes(chars)]
                all_boxes.append(tuple(boxes))
        finally:
            doc.close()
    found = tuple(_share(page_text, r, hits) for r, hits in zip(ranges, located, strict=True))
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for n, line_boxes in enumerate(all_boxes):
        if found[n] < MIN_FOUND:
            continue
        for left, top, right, bottom in line_boxes:
            pad = max(1, (bottom - top) // 8)
            draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=FILLS[min(n, 1)])
            if n:
                draw.line((left, bottom + pad, right, bottom + pad), fill=UNDERLINE, width=max(2, pad))
    image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    out = io.BytesIO()
    # Lossless WebP: a fifth of the PNG's size with the highlight colours exact (a palette PNG loses them).
    image.save(out, format="WEBP", lossless=True, method=0)
    return PageImage(out.getvalue(), page, pages, image.width, image.height, tuple(all_boxes), found)


def _margins(pdf_page: object, page_w: float, page_h: float) -> tuple[float, float, float, float]:
    """Blank margins to leave out (left, bottom, right, top; page units), so the text is drawn larger.

    Found on a small draft rendering; never zooms in more than ``MAX_ZOOM`` times the whole page.
    """
    from PIL import ImageOps

    draft_scale = 200 / max(page_w, 1.0)
    draft = pdf_page.render(scale=draft_scale, may_draw_forms=False).to_pil().convert("L")  # type: ignore[attr-defined]
    box = ImageOps.invert(draft).point(lambda v: 255 if v > 24 else 0).getbbox()
    if box is None:
        return 0.0, 0.0, 0.0, 0.0
    pad = 0.03 * page_w
    left = max(0.0, box[0] / draft_scale - pad)
    right = max(0.0, page_w - box[2] / draft_scale - pad)
    top = max(0.0, box[1] / draft_scale - pad)
    bottom = max(0.0, page_h - box[3] / draft_scale - pad)
    spare = page_w - page_w / MAX_ZOOM - (left + right)
    if spare < 0:  # too narrow: give back margin evenly
        left, right = max(0.0, left + spare / 2), max(0.0, right + spare / 2)
    return left, bottom, right, top


def _share(text: str, span: Range, hits: list[int]) -> float:
    """The share of the letters in ``span`` that were located (hits count pdfium letters)."""
    letters = len(_keys(text[span[0] : span[1]])[0])
    return min(1.0, len(hits) / letters) if letters else 0.0


def page_range(page_starts: Sequence[int], text_length: int, page: int, separator: int = 2) -> Range:
    """The offsets of page ``page`` (1-based) in a document's text (pages joined by ``separator``)."""
    start = page_starts[page - 1]
    end = page_starts[page] - separator if page < len(page_starts) else text_length
    return start, end


def same_file(path: Path, doc_id: str) -> bool:
    """Whether ``path`` still holds the bytes whose hash starts with ``doc_id``."""
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest().startswith(doc_id)
