"""One JSON shape for an Answer, used by ``qa ask --json``, batch files, the web API and the UI.

The shape is documented once, as a JSON Schema shipped in the package (``answer.schema.json``);
a batch row is this object with the row's ``id``, ``error`` and gold columns around it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .types import Answer, Citation, Snippet

SCHEMA_FILE = Path(__file__).with_name("answer.schema.json")


def citation_dict(c: Citation) -> dict[str, Any]:
    return {"id": c.id, "source": c.source, "page": c.page, "start": c.start, "end": c.end}


def snippet_dict(s: Snippet) -> dict[str, Any]:
    return {"text": s.text, "citation": citation_dict(s.citation), "confidence": s.score}


def answer_dict(answer: Answer) -> dict[str, Any]:
    """The Answer as plain JSON-ready data (see ``answer.schema.json``)."""
    best = answer.best
    return {
        "question": answer.question,
        "answer": best.text if best else None,
        "citation": citation_dict(best.citation) if best else None,
        "phrase": snippet_dict(answer.phrase) if answer.phrase else None,
        "confidence": round(answer.confidence, 4),
        "abstained": answer.abstained,
        "reason": answer.reason,
        "scorer": answer.scorer,
        # what supports the answer, or, when it abstained, the closest passages
        "supporting": [snippet_dict(s) for s in (answer.snippets[1:] if best else answer.related)],
        "missing_terms": list(answer.missing_terms),
    }


def empty_dict(question: str) -> dict[str, Any]:
    """The same shape for a question that could not be asked (a batch row with an error)."""
    return {
        "question": question,
        "answer": None,
        "citation": None,
        "phrase": None,
        "confidence": None,
        "abstained": None,
        "reason": None,
        "scorer": None,
        "supporting": [],
        "missing_terms": [],
    }


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
