"""Sentence splitting and chunking keep offsets true and respect the token limit."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from unittest.mock import patch

import pysbd
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.chunk import MAX_BLOCK_CHARS, MAX_SENTENCE_CHARS, _segmenter, chunk_document, split_sentences
from qa.types import Document

from .conftest import SEED_FILE, WordTokenizer, shared_path


def doc(text: str, kind: str = "txt") -> Document:
    return Document("0" * 16, "t.txt", "T", text, kind)


def sentences_of(text: str, kind: str = "txt") -> list[str]:
    return [text[a:b] for a, b in split_sentences(doc(text, kind))]


def test_abbreviations_and_decimals_do_not_end_sentences():
    text = (
        "The U.S. Department of Defense met Dr. Smith, e.g. about the $2.4 billion procurement. "
        "Japan produces Patriot missiles under U.S. license."
    )
    assert sentences_of(text) == [
        "The U.S. Department of Defense met Dr. Smith, e.g. about the $2.4 billion procurement.",
        "Japan produces Patriot missiles under U.S. license.",
    ]


def test_seed_corpus_sentences_keep_us_whole():
    text = SEED_FILE.read_text(encoding="utf-8")
    found = sentences_of(text)
    assert "Japan produces under U.S. license, to the United States." in " ".join(found)
    assert not any(s.endswith("U.S.") for s in found)
    assert len(found) == 32


def test_text_line_breaks_end_blocks_but_pdf_line_breaks_do_not():
    text = "A heading\nThe body starts here. It goes on\nacross a wrapped line."
    assert sentences_of(text) == ["A heading", "The body starts here.", "It goes on\nacross a wrapped line."]
    pdf = "The body starts\nhere and goes on. Next one.\n\nNew block."
    assert sentences_of(pdf, "pdf") == ["The body starts\nhere and goes on.", "Next one.", "New block."]


prose = st.lists(
    st.sampled_from(
        [
            "The U.S. agreed.",
            "Dr. Lee left.",
            "It cost $2.4 billion.",
            "Why?",
            "Yes!",
            "e.g. this",
            "\n",
            "\n\n",
            "  ",
            "word",
            "Another sentence here.",
            "(Inc.)",
            "…",
            "x.y",
            "Ünïcödé text.",
        ]
    ),
    max_size=40,
).map(" ".join)


@given(prose, st.sampled_from(["txt", "md", "pdf"]))
@settings(max_examples=150, deadline=None)
def test_sentences_cover_every_non_space_character(text, kind):
    spans = split_sentences(doc(text, kind))
    covered = [False] * len(text)
    last_end = 0
    for a, b in spans:
        assert last_end <= a < b <= len(text)
        assert text[a:b] == text[a:b].strip()
        for i in range(a, b):
            covered[i] = True
        last_end = b
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


@given(prose, st.integers(8, 40), st.integers(0, 7))
@settings(max_examples=150, deadline=None)
def test_chunks_are_whole_sentences_within_budget_and_rebuild_the_text(text, size, overlap):
    d = doc(text)
    tokenizer = WordTokenizer(max_tokens=254)
    sentences, chunks = chunk_document(d, tokenizer, size, overlap, with_title=False)
    for s in sentences:
        assert s.tokens <= size
    rebuilt_to = 0
    for c in chunks:
        assert c.start == sentences[c.first].start and c.end == sentences[c.last - 1].end
        assert tokenizer.count([text[c.start : c.end]])[0] <= size
        assert c.start <= rebuilt_to or not text[rebuilt_to : c.start].strip()
        rebuilt_to = max(rebuilt_to, c.end)
    # Chunks, laid out by their offsets, rebuild every non-space character of the source.
    layout = [" "] * len(text)
    for c in chunks:
        layout[c.start : c.end] = text[c.start : c.end]
    assert "".join(layout).split() == text.split()


def test_long_sentence_is_cut_at_token_boundaries_not_truncated():
    text = " ".join(f"w{i}" for i in range(100)) + "."
    sentences, chunks = chunk_document(doc(text), WordTokenizer(), 30, 5, with_title=False)
    assert [s.tokens for s in sentences] == [30, 30, 30, 10]
    assert " ".join(text[s.start : s.end] for s in sentences) == text


def words_without_punctuation(chars: int) -> str:
    words = re.findall(r"[A-Za-z]+", SEED_FILE.read_text(encoding="utf-8"))
    out, n, i = [], 0, 0
    while n < chars:
        out.append(words[i % len(words)])
        n += len(out[-1]) + 1
        i += 7
    return " ".join(out)


class LongestSeen(WordTokenizer):
    """The word tokenizer, noting the longest text it is given (what its cost grows with)."""

    longest = 0

    def count(self, texts):  # type: ignore[no-untyped-def]
        self.longest = max([self.longest, *map(len, texts)])
        return super().count(texts)

    def spans(self, text):  # type: ignore[no-untyped-def]
        self.longest = max(self.longest, len(text))
        return super().spans(text)


def test_a_line_without_punctuation_is_cut_at_white_space_into_bounded_sentences():
    text = words_without_punctuation(300_000)
    spans = split_sentences(doc(text))
    assert max(b - a for a, b in spans) <= MAX_SENTENCE_CHARS
    assert all((a == 0 or text[a - 1] == " ") and (b == len(text) or text[b] == " ") for a, b in spans)
    assert [w for a, b in spans for w in text[a:b].split()] == text.split()
    tokenizer = LongestSeen()
    sentences, chunks = chunk_document(doc(text), tokenizer, 200, 32, with_title=False)
    assert tokenizer.longest <= MAX_SENTENCE_CHARS  # no single call grows with the line
    assert max(s.tokens for s in sentences) <= 200 and len(chunks) >= len(text.split()) // 200


def test_a_long_block_is_cut_between_sentences_not_inside_one():
    text = "The alliance met in Tokyo, and agreed. " * 2_000  # 78k characters on one line
    assert len(text) > 3 * MAX_BLOCK_CHARS
    assert set(sentences_of(text)) == {"The alliance met in Tokyo, and agreed."}


@given(prose, st.sampled_from(["txt", "md", "pdf"]))
@settings(max_examples=100, deadline=None)
def test_cutting_long_blocks_and_sentences_keeps_every_character(text, kind):
    with patch.multiple("qa.chunk", MAX_BLOCK_CHARS=40, MAX_SENTENCE_CHARS=16):
        spans = split_sentences(doc(text, kind))
    assert all(0 < b - a <= 16 for a, b in spans)
    assert all(b <= c for (_, b), (c, _) in pairwise(spans))
    assert [w for a, b in spans for w in text[a:b].split()] == text.split()  # no word is cut: all are short


def test_overlap_repeats_whole_sentences():
    text = " ".join(f"Sentence number {i} is here." for i in range(10))
    sentences, chunks = chunk_document(doc(text), WordTokenizer(), 12, 5, with_title=False)
    assert len(chunks) > 1
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert nxt.first == prev.last - 1  # one five-word sentence of overlap


abbreviation_prose = st.lists(
    st.sampled_from(
        [
            "Gen.",
            "gen",
            "No.",
            "no",
            "5",
            "Mr.",
            "St. Louis",
            "e.g.",
            "i.e.",
            "U.S.",
            "Fig.",
            "fig",
            "a.m.",
            "and",
            "Ph.D.",
            "Corp.",
            "(",
            "Smith",
            "apr.",
            "x.",
            "vs.",
            "Art.",
            "pp.",
            "12",
            "The",
            "end.",
        ]
    ),
    max_size=30,
).map(" ".join)


def _same_as_pysbd(texts):
    stock = pysbd.Segmenter(language="en", clean=False, char_span=False)
    for text in texts:
        assert _segmenter().processor(text).process() == stock.processor(text).process(), text


@given(abbreviation_prose)
@settings(max_examples=200, deadline=None)
def test_faster_abbreviation_pass_splits_as_pysbd_does(text):
    _same_as_pysbd([text])


def test_faster_abbreviation_pass_splits_real_text_as_pysbd_does():
    _same_as_pysbd(SEED_FILE.read_text(encoding="utf-8").split("\n\n"))
    corpus = shared_path("datasets", "beir_subsets", "dbpedia", "corpus.jsonl")
    with corpus.open(encoding="utf-8") as lines:
        _same_as_pysbd([json.loads(line)["text"] for _, line in zip(range(1500), lines, strict=False)])
