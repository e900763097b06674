"""Answer quality on the sample corpus with the real model: right sentence first, off-topic abstains."""

from __future__ import annotations

import json

import pytest

from qa import Answer, Assistant
from qa.cite import parse_citation_id
from qa.errors import InputError

from .conftest import ROOT

QUESTIONS = json.loads((ROOT / "tests" / "data" / "seed_questions.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", QUESTIONS["answerable"], ids=lambda c: c["question"][:50])
def test_top_snippet_is_the_sentence_that_answers(assistant: Assistant, case):
    answer = assistant.ask(case["question"])
    assert not answer.abstained, answer.reason
    assert case["answer_sentence"] in answer.snippets[0].text


@pytest.mark.parametrize("question", QUESTIONS["off_topic"])
def test_off_topic_questions_abstain_with_a_reason_and_related_passages(assistant: Assistant, question):
    answer = assistant.ask(question)
    assert answer.abstained and answer.snippets == ()
    assert "too weak a match" in answer.reason
    assert answer.related


def test_every_snippet_equals_the_source_at_its_offsets(assistant: Assistant):
    text = (ROOT / "corpus" / "us-japan-defense-cooperation-2024.txt").read_text(encoding="utf-8")
    for case in QUESTIONS["answerable"]:
        answer = assistant.ask(case["question"], k=5)
        for snippet in answer.snippets + answer.related:
            c = snippet.citation
            assert text[c.start : c.end] == snippet.text
            assert parse_citation_id(c.id)[1:] == (c.start, c.end)
            assert assistant.cite(c.id).text == snippet.text


def test_answer_is_a_whole_object(assistant: Assistant):
    answer = assistant.ask("What is the PJHQ being rebranded as?", k=1)
    best = answer.snippets[0]
    assert answer == Answer(
        question="What is the PJHQ being rebranded as?", snippets=(best,), abstained=False,
        reason="", related=(), confidence=answer.confidence,
    )
    assert best.citation.source == "us-japan-defense-cooperation-2024.txt" and best.citation.page is None
    assert "Japan Joint Operations Center (J-JOC)" in best.text


def test_supporting_snippets_come_from_other_places(assistant: Assistant):
    answer = assistant.ask("What does SOSA do?", k=3)
    spans = [(s.citation.start, s.citation.end) for s in answer.snippets]
    assert len(spans) == 3
    for i, (a, b) in enumerate(spans):
        for c, d in spans[i + 1 :]:
            assert b <= c or d <= a


def test_ask_many_matches_ask(assistant: Assistant):
    questions = [c["question"] for c in QUESTIONS["answerable"][:5]] + QUESTIONS["off_topic"][:2]
    assert assistant.ask_many(questions) == [assistant.ask(q) for q in questions]


@pytest.mark.parametrize("bad", ["", "   \n\t ", "\x00\x01"])
def test_empty_questions_are_refused_clearly(assistant: Assistant, bad):
    with pytest.raises(InputError, match="empty"):
        assistant.ask(bad)


def test_overlong_question_is_refused_with_the_limit(assistant: Assistant):
    with pytest.raises(InputError, match="limit is 2,000"):
        assistant.ask("why " * 30_000)
