"""A question's answer does not depend on what it is asked with, at every precision.

Each of 50 questions (45 from SQuAD v1.1 dev, 5 off-topic) is asked alone and inside one batch of
all of them, against an index of the SQuAD paragraphs they come from, in fp32, bf16 and int8:
the same answer or abstention, the same citations, scores within 0.001. ``make test`` runs this
file a second time with ``QA_CPU_FLAGS`` and the kernel libraries' ISA caps set to the path of a
CPU without VNNI, whatever CPU it runs on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa import Answer, Assistant, Settings
from qa.embed import SentenceTransformerEmbedder

from .conftest import shared_path

pytestmark = [pytest.mark.slow, pytest.mark.precision]

PRECISIONS = ["fp32", "bf16", "int8"]
OFF_TOPIC = [
    "What is the boiling point of tungsten at sea level?",
    "Who painted the ceiling of the Sistine Chapel?",
    "How many moons does Neptune have?",
    "What is a good recipe for sourdough bread?",
    "Which river flows through Budapest?",
]


@pytest.fixture(scope="module")
def squad(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """15 paragraphs from each of the first 4 SQuAD dev articles as 4 text files, and 50 questions."""
    data = json.loads(shared_path("datasets", "squad", "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    corpus = tmp_path_factory.mktemp("squad-corpus")
    questions: list[str] = []
    for article in data[:4]:
        paragraphs = article["paragraphs"][:15]
        text = "\n\n".join(p["context"] for p in paragraphs)
        (corpus / f"{article['title']}.txt").write_text(text + "\n", encoding="utf-8")
        # Several questions per paragraph, spread over the paragraphs.
        questions += [p["qas"][k]["question"] for k in range(3) for p in paragraphs[:4] if len(p["qas"]) > k][:12]
    questions = questions[:45] + OFF_TOPIC
    assert len(questions) == 50
    return corpus, questions


@pytest.fixture(scope="module", params=PRECISIONS)
def precise(request: pytest.FixtureRequest, squad, tmp_path_factory) -> Assistant:  # type: ignore[no-untyped-def]
    corpus, _ = squad
    embedder = SentenceTransformerEmbedder(precision=request.param)
    index_dir = tmp_path_factory.mktemp(f"squad-index-{request.param}")
    Assistant.build(corpus, index_dir, settings=Settings(precision=request.param), embedder=embedder)
    return Assistant.open(index_dir, embedder=embedder)


def shown(answer: Answer) -> tuple[bool, list[str]]:
    return answer.abstained, [s.citation.id for s in answer.snippets + answer.related]


def scores(answer: Answer) -> list[float]:
    return [answer.confidence] + [s.score for s in answer.snippets + answer.related]


def test_each_question_gets_the_same_answer_alone_and_in_a_batch(precise: Assistant, squad):
    _, questions = squad
    together = precise.ask_many(questions)
    alone = [precise.ask(q) for q in questions]
    assert [shown(a) for a in alone] == [shown(b) for b in together]
    gaps = [abs(x - y) for a, b in zip(alone, together, strict=True) for x, y in zip(scores(a), scores(b), strict=True)]
    assert max(gaps) < 0.001
    # Both decisions are exercised: most SQuAD questions are answered, most off-topic ones are not.
    assert sum(not a.abstained for a in alone[:45]) >= 35 and sum(a.abstained for a in alone[45:]) >= 3


def test_each_vector_is_the_same_alone_and_in_a_batch(precise: Assistant, squad):
    _, questions = squad
    embedder = precise.embedder
    together = embedder.embed(questions)
    alone = np.vstack([embedder.embed([q]) for q in questions])
    assert float(np.min(np.sum(together * alone, axis=1))) > 1 - 1e-4
