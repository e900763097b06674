"""Training and evaluation data for the answer scorer: SQuAD files -> candidate sentences with labels.

Candidates come from qa's own retrieval over an index of the same paragraphs, so the scorer is
trained on the sentences it will be shown when answering: the answer sentence, its neighbours and
the near misses of other paragraphs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Document


@dataclass(frozen=True)
class Question:
    """A SQuAD question with its paragraph and, when answerable, every gold answer span in it."""

    id: str
    text: str
    article: int
    doc_id: str
    answers: tuple[tuple[int, str], ...]  # (start in the paragraph, text); empty when unanswerable

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(path: Path, articles: range | None = None) -> tuple[list[Document], list[Question]]:
    """SQuAD v1.1/v2.0 JSON -> one Document per paragraph of ``articles`` (all when None) and their questions."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    docs: list[Document] = []
    questions: list[Question] = []
    for a, article in enumerate(data):
        if articles is not None and a not in articles:
            continue
        title = article["title"].replace("_", " ")
        for p, para in enumerate(article["paragraphs"]):
            text = para["context"]
            doc_id = hashlib.sha256(f"{article['title']}\0{p}\0{text}".encode()).hexdigest()[:16]
            docs.append(Document(doc_id, f"{article['title']}/{p:03d}", title, text, "txt"))
            for qa in para["qas"]:
                answers: tuple[tuple[int, str], ...] = ()
                if not qa.get("is_impossible"):
                    answers = tuple(dict.fromkeys((int(x["answer_start"]), x["text"]) for x in qa["answers"]))
                questions.append(Question(qa["id"], qa["question"], a, doc_id, answers))
    return docs, questions


def label(question: Question, doc_id: str, start: int, end: int, text: str) -> tuple[int, tuple[int, int] | None]:
    """1 when the sentence holds a gold answer of the question's own paragraph, -1 when another
    paragraph's sentence holds the answer text (ambiguous: left out of training), else 0; with the
    answer's span inside the sentence when it lies wholly inside it."""
    if not question.answerable:
        return 0, None
    if doc_id == question.doc_id:
        for a_start, a_text in question.answers:
            if start <= a_start < end:
                a_end = a_start + len(a_text)
                span = (a_start - start, a_end - start) if a_end <= end else None
                return 1, span
        return 0, None
    return (-1 if any(a.lower() in text.lower() for _, a in question.answers) else 0), None


def save(records: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(records, f, protocol=5)


def load_records(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 - files this module wrote itself


def stack(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and question numbers of every candidate of ``records``."""
    feats, labels, owners = [], [], []
    for i, r in enumerate(records):
        for c in r["candidates"]:
            feats.append(c["features"])
            labels.append(c["label"])
            owners.append(i)
    return np.asarray(feats, dtype=np.float32), np.asarray(labels), np.asarray(owners)
