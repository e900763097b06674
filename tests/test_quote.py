"""Finding where a quote comes from: exact, normalised (case, spaces, quotes, dashes), fuzzy."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from qa import Assistant
from qa.cli import main
from qa.quote import fold

from .conftest import SEED_FILE, shared_path

SEED = SEED_FILE.read_text(encoding="utf-8")


@pytest.mark.slow
def test_exact_quote_is_found_at_its_offsets(assistant: Assistant):
    quote = "Japan produces under U.S. license"
    [match] = assistant.find_quote(quote)
    assert match.kind == "exact" and match.similarity == 1.0
    assert SEED[match.citation.start : match.citation.end] == quote


@pytest.mark.slow
def test_case_whitespace_quotes_and_dashes_are_ignored(assistant: Assistant):
    quote = "KISHIDA'S visit - the first state   visit\nto the U.S. since he took office in 2021"
    [match] = assistant.find_quote(quote)
    assert match.kind == "normalized"
    assert match.text == "Kishida’s visit – the first state visit to the U.S. since he took office in 2021"
    assert SEED[match.citation.start : match.citation.end] == match.text


@pytest.mark.slow
def test_close_quote_is_found_with_a_similarity(assistant: Assistant):
    quote = "The revison was promply put into practise with the Japanese governments decision to export Patriots"
    matches = assistant.find_quote(quote)
    assert matches and matches[0].kind == "fuzzy" and 0.8 < matches[0].similarity < 1.0
    assert matches[0].text.startswith("The revision was promptly put into practice")


@pytest.mark.slow
def test_quote_not_in_the_corpus_finds_nothing(assistant: Assistant):
    assert assistant.find_quote("Pineapple belongs on pizza, said the committee chair on Tuesday.") == []


def test_fold_joins_line_end_hyphens_and_maps_back():
    text = "the defen-\nse industry’s “big” plans"
    folded = fold(text)
    assert folded.text == 'the defense industry\'s "big" plans'
    at = folded.text.find("defense industry")
    start, end = folded.span(at, at + len("defense industry"))
    assert text[start:end] == "defen-\nse industry"


def test_fold_reads_ligatures_as_their_letters_and_maps_back():
    text = "the mis\ufb01ts. the rebels, the e\ufb00ort"
    folded = fold(text)
    assert folded.text == "the misfits. the rebels, the effort"
    at = folded.text.find("misfits")
    assert folded.span(at, at + len("misfits")) == (4, 10)  # "misﬁts": six characters in the source
    at = folded.text.find("effort")
    start, end = folded.span(at, at + len("effort"))
    assert text[start:end] == "e\ufb00ort"


@pytest.mark.slow
@pytest.mark.parametrize("marks", ['"{}"', "\u201c{}\u201d", "'{}'"])
def test_a_quote_pasted_with_its_quotation_marks_is_found_exactly(assistant: Assistant, marks):
    quote = "Japan produces under U.S. license"
    [match] = assistant.find_quote(marks.format(quote))
    assert (match.kind, match.text) == ("exact", quote)
    assert SEED[match.citation.start : match.citation.end] == quote


@pytest.mark.slow
def test_sentence_copied_from_a_pdf_is_found_despite_other_line_breaks(tmp_path, embedder):
    corpus = tmp_path / "pdfs"
    corpus.mkdir()
    shutil.copy(shared_path("pdfs", "pdflatex-4-pages.pdf"), corpus / "four.pdf")
    Assistant.build(corpus, tmp_path / "index", embedder=embedder)
    assistant = Assistant.open(tmp_path / "index", embedder=embedder)
    doc = assistant.index.document(0).document
    # A long run of the page text that crosses a line break, pasted as one line with curly quotes.
    start = doc.text.index("\n", 200) - 60
    original = doc.text[start : start + 160]
    pasted = " ".join(original.split()).replace("'", "’").replace(" - ", " – ")
    matches = assistant.find_quote(pasted)
    assert matches and matches[0].kind in ("exact", "normalized")
    assert matches[0].citation.page == doc.page_at(start)
    assert doc.text[matches[0].citation.start : matches[0].citation.end].split() == original.split()


@pytest.mark.slow
def test_quote_command_json_and_stdin(seed_index):
    result = CliRunner().invoke(
        main, ["quote", "-", "--index", str(seed_index), "--json"], input="Patriot missiles, which Japan produces"
    )
    [match] = json.loads(result.output)
    assert match["kind"] == "exact" and match["citation"]["id"].count(":") == 1


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_quote_is_refused(assistant: Assistant, bad):
    from qa.errors import InputError

    with pytest.raises(InputError, match="quote is empty"):
        assistant.find_quote(bad)
