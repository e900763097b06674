"""Reading files: text decoding, PDFs with pages, and clear reasons for files that cannot be read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa.errors import IngestError
from qa.index import Index
from qa.ingest import SourceFile, discover, read_document

from .conftest import build_fake, shared_path


def read(path: Path, max_bytes: int = 10**8):  # type: ignore[no-untyped-def]
    return read_document(SourceFile(path, path.name), max_bytes)


def test_utf8_text_keeps_its_characters_and_newlines_are_normalised(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffKishida’s visit – first.\r\nNext line.".encode())
    document, warnings = read(path)
    assert document.text == "Kishida’s visit – first.\nNext line."
    assert document.title == "a" and warnings == []


def test_latin1_text_is_decoded(tmp_path):
    path = tmp_path / "old.txt"
    path.write_bytes("Café in Zürich costs 5 francs. Ça va très bien, merci beaucoup.".encode("latin-1"))
    document, _ = read(path)
    assert "Zürich" in document.text and "Ça va" in document.text


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_unicode_text_saved_with_a_byte_order_mark_is_read(tmp_path, codec):
    """As Windows tools save "Unicode" text: the byte-order mark names the encoding."""
    path = tmp_path / "notes.txt"
    text = "Kishida’s visit – first.\r\nNext line about Zürich."
    data = text.encode(codec)
    path.write_bytes(data if codec != "utf-16-be" else b"\xfe\xff" + data)
    document, warnings = read(path)
    assert document.text == "Kishida’s visit – first.\nNext line about Zürich." and warnings == []


def test_utf16_without_a_byte_order_mark_says_so(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("Plain words in UTF-16 with no mark at all.".encode("utf-16-le"))
    with pytest.raises(
        IngestError, match="notes.txt: looks like UTF-16 text without a byte-order mark; save it as UTF-8"
    ):
        read(path)
    path.write_bytes(bytes(3000))  # zeros: binary, not UTF-16
    with pytest.raises(IngestError, match="notes.txt: looks like a binary file"):
        read(path)


def test_markdown_title_comes_from_its_heading(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# Alliance notes\n\nSome text.")
    assert read(path)[0].title == "Alliance notes"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "file is empty"),
        ("binary.txt", bytes(range(256)) * 4, "binary"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
    ],
)
def test_unusable_files_raise_a_one_line_reason_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError, match=reason) as info:
        read(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_file_over_the_size_limit_is_refused_with_the_flag_to_raise_it(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(IngestError, match="--max-file-mb"):
        read(path, max_bytes=100)


def test_discover_reports_unsupported_files_and_does_not_follow_folder_links(tmp_path):
    (tmp_path / "a.txt").write_text("A.")
    (tmp_path / "b.docx").write_bytes(b"x")
    (tmp_path / "sub dir ü").mkdir()
    (tmp_path / "sub dir ü" / "c.md").write_text("C.")
    (tmp_path / "sub dir ü" / "loop").symlink_to(tmp_path)
    files, passed = discover([tmp_path])
    assert [f.source for f in files] == ["a.txt", "sub dir ü/c.md"]
    assert ("b.docx", "unsupported type '.docx'; qa reads .txt, .md and .pdf") in passed
    assert any("folder link not followed" in why for _, why in passed)


def test_pdf_pages_map_every_offset_to_its_page(tmp_path):
    path = tmp_path / "four.pdf"
    shutil.copy(shared_path("pdfs", "pdflatex-4-pages.pdf"), path)
    document, warnings = read(path)
    assert len(document.page_starts) == 4 and document.page_starts[0] == 0
    for number, start in enumerate(document.page_starts, 1):
        assert document.page_at(start) == number
        if number > 1:
            assert document.page_at(start - 1) == number - 1


def test_pdf_that_needs_a_password_is_reported_as_such(tmp_path):
    path = tmp_path / "locked.pdf"
    shutil.copy(shared_path("pdfs", "libreoffice-writer-password.pdf"), path)
    with pytest.raises(IngestError, match="encrypted with a password"):
        read(path)


def test_truncated_pdf_is_reported_not_crashing(tmp_path):
    data = shared_path("pdfs", "pdflatex-4-pages.pdf").read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match="cut.pdf"):
        read(path)


def test_image_only_pdf_is_skipped_saying_it_has_no_text(tmp_path):
    path = tmp_path / "scan.pdf"
    shutil.copy(shared_path("pdfs", "imagemagick-CCITTFaxDecode.pdf"), path)
    with pytest.raises(IngestError, match=r"scan.pdf: no text could be extracted \(image-only PDF\? run OCR"):
        read(path)


def make_pdf(pages: list[bytes]) -> bytes:
    """A minimal PDF with one text-showing content stream per page, in Helvetica."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        escaped = text.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        stream = b"BT /F1 12 Tf 72 720 Td (" + escaped + b") Tj ET"
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % len(objects)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % at for at in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


GLYPH_JUNK = bytes(range(1, 32)) * 4  # what a font without a Unicode map gives pypdf


def test_pdf_page_with_an_unreadable_text_layer_is_left_out_with_the_reason(tmp_path):
    path = tmp_path / "mixed.pdf"
    path.write_bytes(make_pdf([b"The alliance met in Tokyo. Budgets grew in 2024.", GLYPH_JUNK]))
    document, warnings = read(path)
    assert document.text.startswith("The alliance met in Tokyo.") and "\x01" not in document.text
    assert len(document.page_starts) == 2
    assert warnings == ["page 2: text layer unreadable (100% control or private-use characters), left out"]


def test_pdf_whose_whole_text_layer_is_garbage_is_skipped_with_the_reason(tmp_path):
    path = tmp_path / "garbage.pdf"
    path.write_bytes(make_pdf([GLYPH_JUNK, GLYPH_JUNK]))
    with pytest.raises(IngestError, match="garbage.pdf: the PDF's text layer is unreadable.*run OCR"):
        read(path)


def test_nothing_indexed_says_why_for_each_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garbage.pdf").write_bytes(make_pdf([GLYPH_JUNK]))
    shutil.copy(shared_path("pdfs", "imagemagick-CCITTFaxDecode.pdf"), corpus / "scan.pdf")
    (corpus / "blank.txt").write_text("  \n\n \t\n")
    with pytest.raises(IngestError) as info:
        build_fake(corpus, tmp_path / "index")
    message = str(info.value)
    assert "(3 file(s) skipped: " in message and "\n" not in message
    assert "blank.txt: holds only white space" in message
    assert "garbage.pdf: the PDF's text layer is unreadable" in message
    assert "scan.pdf: no text could be extracted" in message


PROSE = "The alliance met in Tokyo and agreed on a plan for the coming years. " * 1000  # 69 KB


def test_nul_bytes_after_the_first_64_kb_are_left_out_with_a_warning(tmp_path):
    path = tmp_path / "log.txt"
    path.write_bytes(PROSE.encode() + b"Budgets\x00 grew\x00\x00 in 2024.\n")
    document, warnings = read(path)
    assert "\x00" not in document.text and document.text.endswith("Budgets grew in 2024.\n")
    assert warnings == [f"3 NUL character(s) left out (the first at character {len(PROSE) + 7:,})"]


def test_binary_data_after_the_first_64_kb_is_refused(tmp_path):
    path = tmp_path / "dump.txt"
    path.write_bytes(PROSE.encode() + bytes(range(32)) * 4000)
    with pytest.raises(IngestError, match="dump.txt: looks like a binary file from character 65,536 on"):
        read(path)


def test_link_out_of_the_corpus_is_not_followed_and_is_reported(tmp_path):
    corpus, elsewhere = tmp_path / "corpus", tmp_path / "elsewhere"
    corpus.mkdir()
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("The vault code is 4471.")
    (corpus / "notes.txt").write_text("The alliance met in Tokyo.")
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "secret.txt").symlink_to(elsewhere / "secret.txt")
    files, passed = discover([corpus])
    assert [f.source for f in files] == ["notes.txt"]
    reason = "is a link to a file outside the indexed folders, not followed (qa index --follow-links follows it)"
    assert ("passwd.txt", reason) in passed and ("secret.txt", reason) in passed
    report = build_fake(corpus, tmp_path / "index")
    assert {f.source: f.status for f in report.files} == {
        "notes.txt": "indexed",
        "passwd.txt": "skipped",
        "secret.txt": "skipped",
    }
    assert f"secret.txt: {reason}" in [f.error for f in report.files]
    index = Index.open(tmp_path / "index")
    assert all("4471" not in index.document(row).document.text for row in index.document_rows())


def test_links_inside_an_indexed_folder_or_with_follow_links_are_followed(tmp_path):
    corpus, shared = tmp_path / "corpus", tmp_path / "shared"
    corpus.mkdir()
    shared.mkdir()
    (shared / "glossary.md").write_text("# Glossary\n\nSOSA: security of supply arrangement.")
    (corpus / "terms.md").symlink_to(shared / "glossary.md")
    (corpus / "more").symlink_to(shared)
    files, passed = discover([corpus, shared])
    assert sorted(f.source for f in files) == ["glossary.md", "terms.md"]
    assert [name for name, _ in passed] == ["more"]
    files, passed = discover([corpus], follow_links=True)
    assert sorted(f.source for f in files) == ["more/glossary.md", "terms.md"] and passed == []
    (shared / "loop").symlink_to(corpus)  # a loop is walked once
    files, _ = discover([corpus], follow_links=True)
    assert sorted(f.source for f in files) == ["more/glossary.md", "terms.md"]
