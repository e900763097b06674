"""Fit the abstention threshold on data nobody here wrote.

Four question sets, each counting the same: SQuAD v1.1 dev questions of articles 0-23 asked
against the SQuAD index (answerable: their paragraph is in it) and against an index of the sample
corpus (unanswerable: it answers none of them); and the sample corpus's own answerable and
off-topic questions (tests/data/seed_questions.json), which are paraphrased far more than SQuAD's.
The threshold with the best mean rate (lowest of those within half a point) is printed.

    .venv/bin/python benchmarks/calibrate_abstention.py --data ../shared/datasets/squad/dev-v1.1.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from qa import Assistant, Settings
from qa import evaluate as ev

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/squad/dev-v1.1.json")
    parser.add_argument("--work", type=Path, default=ROOT / "results")
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    settings = Settings()
    squad, questions, vectors = ev.prepare(args.data, args.work, settings, progress=False)
    qs, vs = ev.split(questions, vectors, ev.TUNE_ARTICLES)
    qs, vs = qs[: args.limit], vs[: args.limit]
    answerable = ev.confidences(squad, [q.text for q in qs], vs)
    with tempfile.TemporaryDirectory() as tmp:
        Assistant.build(ROOT / "corpus", tmp, settings=settings, embedder=squad.embedder)
        seed = Assistant.open(tmp, settings=settings, embedder=squad.embedder)
        unanswerable = ev.confidences(seed, [q.text for q in qs], vs)
        own = json.loads((ROOT / "tests/data/seed_questions.json").read_text())
        off = own["off_topic"]
        on = [c["question"] for c in own["answerable"]]
        off_conf = ev.confidences(seed, off, seed.embedder.embed(off))
        on_conf = ev.confidences(seed, on, seed.embedder.embed(on))
    fit = ev.calibrate([answerable, on_conf], [unanswerable, off_conf])
    result = {
        "sets": [
            "squad answerable (answered)",
            "sample answerable (answered)",
            "squad against the sample corpus (abstained)",
            "sample off-topic (abstained)",
        ],
        "sizes": [len(qs), len(on), len(qs), len(off)],
        **fit,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
