"""Cited PDF pages: qa's offsets placed on pdfium's characters, drawn on real PDFs from ../shared."""

from __future__ import annotations

import io

import pytest

from qa.pages import align, locate, page_range, render_page

from .conftest import shared_path


def pypdf_pages(path) -> list[str]:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(path).pages]


def test_alignment_survives_line_breaks_soft_hyphens_and_ligatures():
    ours = "consectetuer adip-\niscing elit. The misﬁts."
    theirs = "consectetuer adip\x02iscing elit.\r\nThe misfits."
    mapping = align(ours, theirs)
    assert theirs[mapping[ours.index("iscing")]] == "i" and mapping[ours.index("iscing")] == theirs.index("iscing")
    assert [theirs[i] for i in locate(ours, theirs, [(ours.index("The"), len(ours))])[0]] == list("Themisfits")


def test_a_range_printed_in_another_reading_order_is_still_found():
    ours = "Left column text here. Right column words."
    theirs = "Right column words. Left column text here."
    (hits,) = locate(ours, theirs, [(0, 22)])
    assert "".join(theirs[i] for i in hits) == "Leftcolumntexthere"


def test_page_range_takes_one_page_of_the_joined_text():
    text = "one\n\ntwo two\n\nthree"
    starts = (0, 5, 14)
    assert [text[slice(*page_range(starts, len(text), p))] for p in (1, 2, 3)] == ["one", "two two", "three"]


@pytest.mark.parametrize(
    ("name", "page"),
    [("multicolumn.pdf", 1), ("pdflatex-4-pages.pdf", 3), ("crazyones-pdfa.pdf", 1), ("GeoTopo-komprimiert.pdf", 20)],
)
def test_every_sentence_sized_range_of_real_pages_is_placed_on_the_page(name, page):
    path = shared_path("pdfs", name)
    text = pypdf_pages(path)[page - 1]
    ranges = [(i, min(len(text), i + 150)) for i in range(0, len(text) - 20, 150)]
    view = render_page(path, page, text, ranges)
    assert min(view.found) >= 0.9, view.found
    assert all(view.boxes), "every range has boxes"
    for boxes in view.boxes:
        for left, top, right, bottom in boxes:
            assert 0 <= left < right <= view.width and 0 <= top < bottom <= view.height


def test_the_highlight_sits_on_the_printed_words():
    """The boxes of a quote cover darker (printed) pixels than the page around them, in both columns."""
    from PIL import Image

    path = shared_path("pdfs", "multicolumn.pdf")
    text = pypdf_pages(path)[0]
    start = text.index("Nam dui ligula")
    phrase = text.index("fringilla", start)
    view = render_page(path, 1, text, [(start, text.index("wisi.", start) + 5), (phrase, phrase + 9)])
    assert view.found == (1.0, 1.0) and len(view.boxes[0]) == 2 and len(view.boxes[1]) == 1
    image = Image.open(io.BytesIO(view.data)).convert("RGB")
    assert view.data[:4] == b"RIFF" and image.size == (view.width, view.height)
    left, top, right, bottom = view.boxes[1][0]
    inside = [image.getpixel((x, y)) for x in range(left, right) for y in range(top, bottom)]
    # Marked: the phrase is drawn over in orange (red high, blue low), not left white.
    assert sum(1 for r, g, b in inside if r > 200 and b < 150) > 0.5 * len(inside)
    assert right - left < view.width / 2  # one word, not a whole line


def test_a_rotated_page_is_drawn_upright_with_its_boxes_on_it():
    path = shared_path("pdfs", "habibi-rotated.pdf")
    text = pypdf_pages(path)[0]
    at = text.index("habibi")
    view = render_page(path, 1, text, [(at, at + 6)])
    assert view.found == (1.0,) and view.boxes[0]
    lefts, tops, rights, bottoms = zip(*view.boxes[0], strict=True)
    assert max(bottoms) - min(tops) > 2 * (max(rights) - min(lefts))  # the word runs down the upright page


def test_a_page_outside_the_pdf_is_a_clear_error():
    path = shared_path("pdfs", "crazyones-pdfa.pdf")
    with pytest.raises(ValueError, match="page 3 is not in this PDF of 1 page"):
        render_page(path, 3, "", [])
