"""What the answer scorer reads besides the text: question types, answer-type cues, junk, key terms.

Everything here is cheap (regular expressions over one question and a few dozen sentences) and
shared by training and answering, so the model sees the same features in both.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The question's expected answer type, from its wh-words. Order matters: the first match wins.
QUESTION_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "count",
        re.compile(
            r"\bhow (many|much|long|far|old|large|big|tall|high|often)\b|\bwhat (percentage|percent|number|amount)\b",
            re.I,
        ),
    ),
    (
        "time",
        re.compile(
            r"\bwhen\b|\bwhat (year|years|date|day|month|century|decade|time|period|era)\b|\bin which (year|century)\b",
            re.I,
        ),
    ),
    ("person", re.compile(r"\bwho(m|se)?\b", re.I)),
    ("place", re.compile(r"\bwhere\b|\bwhat (country|city|state|region|place|continent)\b", re.I)),
    ("reason", re.compile(r"\bwhy\b", re.I)),
    ("manner", re.compile(r"\bhow\b", re.I)),
    ("which", re.compile(r"\bwhich\b", re.I)),
    ("what", re.compile(r"\bwhat\b", re.I)),
)
TYPE_NAMES = tuple(name for name, _ in QUESTION_TYPES) + ("other",)

_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|thousand|million|billion|trillion|dozen|half|several)\b",
    re.I,
)
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\b\.?"
)
_TIME_WORDS = re.compile(r"\b(century|centuries|decade|year|years|era|period|dynasty|age|ago|since|until)\b", re.I)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")
_WORD = re.compile(r"[^\W\d_]{2,}")
_TOKEN = re.compile(r"[\w][\w\-'.]*[\w]|[\w]")
_QUESTION_WORDS = frozenset(
    [
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "by",
        "with",
        "from",
        "and",
        "or",
        "as",
        "that",
        "this",
        "these",
        "those",
    ]
)


_QUANTITY = re.compile(
    _NUMBER.pattern[:-3] + r"|once|twice|thrice|couple|both|dozens|hundreds|thousands|millions|billions|few|"
    r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|sixty|seventy|eighty|ninety)\b",
    re.I,
)


def states_quantity(text: str) -> bool:
    """Whether ``text`` gives a quantity in digits or words (what a "how many" question needs)."""
    return bool(_QUANTITY.search(text))


def question_type(question: str) -> str:
    """The kind of answer the question asks for: count, time, person, place, reason, manner, which, what or other."""
    for name, pattern in QUESTION_TYPES:
        if pattern.search(question):
            return name
    return "other"


def states_type(kind: str, text: str) -> bool:
    """Whether ``text`` holds something of the kind asked for (a number for a count, a date for a time)."""
    if kind == "count":
        return bool(_NUMBER.search(text))
    if kind == "time":
        return bool(_YEAR.search(text) or _MONTH.search(text) or _TIME_WORDS.search(text))
    return True


def is_junk(text: str) -> bool:
    """Text that cannot answer anything: no words (dot leaders, page numbers, formula fragments, rules).

    At least two words of two or more letters, and letters in at least a third of the characters
    that are not white space.
    """
    words = _WORD.findall(text)
    if len(words) < 2:
        return True
    visible = sum(1 for c in text if not c.isspace())
    letters = sum(1 for c in text if c.isalpha())
    return letters < visible / 3


def is_cell_column(text: str) -> bool:
    """A table read column by column, not a sentence: six or more lines, most of them a cell of one
    to three words ("Capital", "Jakarta", "Berlin", ...). Its rows no longer line up, so a phrase
    picked inside it (the capital next to the wrong country) cannot be trusted."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 6:
        return False
    short = sum(1 for words in lines if len(words) <= 3)
    return short >= 0.8 * len(lines)


def is_english_script(question: str) -> bool:
    """Whether most of the question's letters are Latin: the models read English only."""
    letters = [c for c in question if c.isalpha()]
    if not letters:
        return True
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    return latin >= 0.6 * len(letters)


def key_terms(question: str) -> list[str]:
    """The question's distinctive words as written: names, numbers, codes (F-35, RDT&E, 2024).

    A capitalised word counts unless it opens the question or is a question word; words with
    digits count always.
    """
    found: list[str] = []
    tokens = _TOKEN.findall(question)
    for i, token in enumerate(tokens):
        bare = token.strip(".'")
        if not bare or bare.lower() in _QUESTION_WORDS:
            continue
        if any(c.isdigit() for c in bare) or (i > 0 and bare[0].isupper()) or (len(bare) > 1 and bare.isupper()):
            found.append(bare)
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Cues:
    """Per-question facts the scorer and the abstention reasons share."""

    kind: str
    missing: tuple[str, ...]  # key terms that occur nowhere in the sources


def sentence_features(
    kind: str,
    texts: Sequence[str],
    dense: np.ndarray,
    lexical: np.ndarray,
    coverage: np.ndarray,
    chunk: np.ndarray,
    rank: np.ndarray,
    chunk_rank: np.ndarray,
    missing: int,
) -> np.ndarray:
    """The cheap scorer's inputs, one row per candidate sentence (see ``FEATURE_NAMES``)."""
    n = len(texts)
    out = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    first = TYPE_NAMES.index(kind)
    best = float(np.max(dense)) if n else 0.0
    for i, text in enumerate(texts):
        has_number = bool(_NUMBER.search(text))
        has_time = bool(_YEAR.search(text) or _MONTH.search(text))
        capitals = len(_CAPITALISED.findall(text))
        letters = sum(1 for c in text if c.isalpha()) / max(1, len(text))
        row = [
            dense[i],
            lexical[i],
            coverage[i],
            chunk[i],
            best - dense[i],
            np.log1p(rank[i]),
            np.log1p(chunk_rank[i]),
            np.log1p(len(text)) / 6.0,
            letters,
            float(has_number),
            float(has_time),
            min(capitals, 6) / 6.0,
            float(is_junk(text)),
            float(missing > 0),
            float(kind == "count" and has_number),
            float(kind == "time" and (has_time or has_number)),
            float(kind in ("person", "place") and capitals > 0),
        ]
        out[i, : len(row)] = row
        out[i, len(row) + first] = 1.0
    return out


FEATURE_NAMES = (
    "dense",
    "lexical",
    "coverage",
    "chunk",
    "gap_to_best",
    "log_rank",
    "log_chunk_rank",
    "log_length",
    "letter_share",
    "has_number",
    "has_time",
    "capitalised",
    "junk",
    "key_term_missing",
    "count_and_number",
    "time_and_date",
    "name_for_who_where",
) + tuple(f"type_{t}" for t in TYPE_NAMES)
