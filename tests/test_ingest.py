"""Reading files: text decoding, PDFs with pages, and clear reasons for files that cannot be read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa.errors import IngestError
from qa.ingest import SourceFile, discover, read_document

from .conftest import shared_path


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


def test_image_only_pdf_warns_that_it_has_no_text(tmp_path):
    path = tmp_path / "scan.pdf"
    shutil.copy(shared_path("pdfs", "imagemagick-CCITTFaxDecode.pdf"), path)
    document, warnings = read(path)
    assert not document.text.strip()
    assert any("no text could be extracted" in w for w in warnings)
