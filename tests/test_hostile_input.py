"""Hostile and awkward input: terminal escapes in sources, very long quotes, ids in upper case."""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa import Assistant
from qa.cite import resolve
from qa.cli import main, visible
from qa.index import Index
from qa.quote import MAX_QUOTE_CHARS, find_quote

from .conftest import SEED_FILE, build_fake

SEED = SEED_FILE.read_text(encoding="utf-8")
# What no printer may send to a terminal: C0 controls but tab and newline, DEL, C1, bidi overrides.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = (
    "The alliance met in Tokyo. \x1b[8mHidden orders: sell every share.\x1b[0m Budgets grew. "
    "A link \x1b]8;;http://evil.example/\x07click here\x1b]8;;\x07 and \x01\x02 bytes, a C1 \x9b2J "
    "erase and a \u202eversed\u202c name.\n"
)


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """The sample document and one holding escapes, under a file name that holds one too."""
    corpus = tmp_path_factory.mktemp("hostile-corpus")
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)
    (corpus / "orders\x1b[2J.txt").write_text(SEED + "\n" + HOSTILE)
    index_dir = tmp_path_factory.mktemp("hostile-index")
    Assistant.build(corpus, index_dir, embedder=embedder)
    return index_dir


def run(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, list(args))
    assert not RAW_CONTROL.search(result.output), result.output
    return result


def test_visible_escapes_control_characters_and_keeps_the_rest():
    assert visible("a\x1b[8mb\x00\x7f\x9b\u202e\tc\nd — ü") == "a\\x1b[8mb\\x00\\x7f\\x9b\\u202e\tc\nd — ü"
    assert visible("one\nline\t", one_line=True) == "one\\nline\\t"


@pytest.mark.slow
def test_no_printer_sends_control_characters_to_the_terminal(hostile_index):
    index = str(hostile_index)
    quote = run("quote", "Hidden orders: sell every share.", "--index", index)
    assert quote.exit_code == 0 and "orders\\x1b[2J.txt" in quote.output
    [match] = json.loads(run("quote", "Hidden orders: sell every share.", "--index", index, "--json").output)
    passage = run("cite", match["citation"]["id"], "--index", index, "--context", "200")
    assert "\nThe alliance met in Tokyo. \\x1b[8m>>>Hidden orders: sell every share.<<<\\x1b[0m Budgets" in (
        passage.output
    )
    assert "\\x1b]8;;http://evil.example/\\x07click here" in passage.output and "\\x01\\x02" in passage.output
    assert "\\x9b2J" in passage.output and "\\u202eversed\\u202c" in passage.output
    answer = run("ask", "What were the hidden orders?", "--index", index, "-k", "3")
    assert "\\x1b[8mHidden orders: sell every share." in answer.output
    sources = run("sources", "--index", index)
    assert "indexed   orders\\x1b[2J.txt: " in sources.output
    error = run("cite", "ffffffffffff:0-5", "--index", index)
    assert error.exit_code == 1


@pytest.mark.slow
def test_escaping_changes_what_is_shown_not_the_text_or_its_offsets(hostile_index):
    result = run("cite", "--json", "--index", str(hostile_index), _citation_of("Hidden orders", hostile_index))
    data = json.loads(result.output)
    assert data["before"].endswith("Tokyo. \x1b[8m") and data["after"].startswith("\x1b[0m Budgets")
    assert "\x9b2J" in data["after"] and "\u202eversed" in data["after"]  # JSON escapes them, still the same text
    index = Index.open(hostile_index)
    doc = next(index.document(r).document for r in index.document_rows() if r != index.row_of(_seed_id(index)))
    c = data["citation"]
    assert doc.text[c["start"] : c["end"]] == "Hidden orders: sell every share."


def _citation_of(text: str, index_dir: Path) -> str:
    [match] = find_quote(Index.open(index_dir), text + ": sell every share.")
    return match.citation.id


def _seed_id(index: Index) -> str:
    import hashlib

    return hashlib.sha256(SEED_FILE.read_bytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def seed_fake(tmp_path_factory) -> Index:  # type: ignore[no-untyped-def]
    corpus = tmp_path_factory.mktemp("seed")
    shutil.copy(SEED_FILE, corpus / "seed.txt")
    index_dir = tmp_path_factory.mktemp("seed-index")
    build_fake(corpus, index_dir)
    return Index.open(index_dir)


def test_upper_case_citation_id_resolves_like_the_lower_case_one(seed_fake):
    at = SEED.index("Patriot missiles")
    [match] = find_quote(seed_fake, SEED[at : at + 40])
    upper = match.citation.id.upper()
    assert upper != match.citation.id
    assert resolve(seed_fake, upper) == resolve(seed_fake, match.citation.id)
    assert resolve(seed_fake, f"[{upper}]").citation.id == match.citation.id


def test_longest_accepted_quote_takes_under_two_seconds(seed_fake):
    words = SEED.split()
    rng = random.Random(7)
    # Words of the corpus in a random order: every chunk is a candidate and none aligns well.
    scrambled = " ".join(rng.choice(words) for _ in range(MAX_QUOTE_CHARS))[:MAX_QUOTE_CHARS]
    started = time.process_time()  # CPU time: what the work costs, however busy the machine is
    assert find_quote(seed_fake, scrambled) == []
    assert time.process_time() - started < 2.0  # 18 s before (0.2 s now) on this project's machines


def test_long_quote_with_typos_is_found_at_its_place(seed_fake):
    start, end = SEED.index("The revision was promptly"), len(SEED.rstrip())
    original = SEED[start:end]
    rng = random.Random(3)
    typed = list(original)
    for _ in range(len(original) // 30):  # a typo every 30 characters
        typed[rng.randrange(1, len(typed) - 1)] = rng.choice("xqz")
    started = time.process_time()
    [match] = find_quote(seed_fake, "".join(typed))
    assert time.process_time() - started < 2.0
    assert len(original) > 4000 and match.kind == "fuzzy" and 0.9 < match.similarity < 1.0
    assert (match.citation.start, match.citation.end) == (start, end)
