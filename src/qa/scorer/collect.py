"""Collect the scorer's training candidates: index SQuAD paragraphs with qa, retrieve for every question.

    python -m qa.scorer.collect --data ../shared/datasets/squad/train-du2017.json --out work/du2017.pkl
    python -m qa.scorer.collect --data ../shared/datasets/squad/dev-v2.0.cs224n-half.json --articles 0-7 \
        --out work/v2-0-7.pkl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from ..assistant import Assistant
from ..build import build_index
from ..embed import embedder_for
from ..lexical import terms
from ..settings import Settings
from . import data
from .candidates import candidates, cues, features

CANDIDATES = 24


def parse_range(text: str | None) -> range | None:
    if not text:
        return None
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def collect(path: Path, articles: range | None, work: Path, settings: Settings) -> list[dict]:
    docs, questions = data.load(path, articles)
    embedder = embedder_for(settings)
    tag = hashlib.sha256(json.dumps([str(path), str(articles), settings.index_fields()]).encode()).hexdigest()[:10]
    index_dir = work / f"index-{path.stem}-{tag}"
    build_index(index_dir, [], settings, embedder, documents=docs, progress=True)
    assistant = Assistant.open(index_dir, settings=settings, embedder=embedder)
    index = assistant.index
    vectors = embedder.embed([q.text for q in questions])
    records = []
    started = time.perf_counter()
    for n, (q, v) in enumerate(zip(questions, vectors, strict=True)):
        hits, scored = assistant.retrieve(q.text, v)
        cands = candidates(index, scored, CANDIDATES, with_neighbours=True)
        question_cues = cues(index, q.text, hits)
        rows = features(question_cues, cands)
        out = []
        for c, f in zip(cands, rows, strict=True):
            doc = index.document(c.scored.doc).document
            lab, span = data.label(q, doc.doc_id, c.scored.start, c.scored.end, c.text)
            out.append(
                {
                    "text": c.text,
                    "title": c.title,
                    "label": lab,
                    "span": span,
                    "features": f,
                    "before": c.before,
                    "after": c.after,
                    "doc_id": doc.doc_id,
                    "start": c.scored.start,
                    "sentence": c.scored.sentence,
                }
            )
        gold_found = any(x["label"] == 1 for x in out)
        records.append(
            {
                "id": q.id,
                "question": q.text,
                "article": q.article,
                "answerable": q.answerable,
                "answers": [a for _, a in q.answers],
                "kind": question_cues.kind,
                "missing": question_cues.missing,
                "candidates": out,
                "gold_found": gold_found,
                "terms": terms(q.text),
            }
        )
        if n % 1000 == 0:
            print(f"{n}/{len(questions)} {time.perf_counter() - started:.0f}s", flush=True)
    assistant.close()
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--articles", help="e.g. 0-7 (default: all)")
    ap.add_argument("--work", type=Path, default=Path("work/scorer"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    settings = Settings(precision=args.precision)
    records = collect(args.data, parse_range(args.articles), args.work, settings)
    data.save(records, args.out)
    found = sum(r["gold_found"] for r in records if r["answerable"])
    answerable = sum(r["answerable"] for r in records)
    print(f"{len(records)} questions, gold sentence among candidates for {found}/{answerable}")


if __name__ == "__main__":
    main()
