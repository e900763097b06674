"""What the answer scorer costs a user: one question end to end, and a batch file, scorer on and off.

Builds (or reuses) the SQuAD v1.1 dev index at the given encoder precision, then, in one process:
- asks ``--questions`` SQuAD questions one at a time, alternating scorers none / cheap / reader
  question by question (so all three see the same machine state), and reports p50 / p95 ms;
- answers a batch of ``--batch`` questions through ``qa batch`` in a fresh process per scorer,
  start-up included, and reports questions per second.

    .venv/bin/python benchmarks/scorer_speed.py --precision fp32 --out results/scorer_speed.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import emit, machine

from qa import Assistant, Settings
from qa.assistant import export_models
from qa.evaluate import load_squad, prepare

SCORERS = ("none", "cheap", "reader")


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/squad/dev-v1.1.json"))
    ap.add_argument("--work", type=Path, default=Path("results"))
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    settings = Settings(precision=args.precision)
    built, questions, _ = prepare(args.data, args.work, settings, progress=False)
    index_dir = built.index.dir
    # What `qa index` leaves beside an index, so that questions take the user's path (ONNX Runtime).
    export_models(index_dir, built.embedder)
    assistant = Assistant.open(index_dir, settings=settings)
    rng = np.random.default_rng(7)
    picked = [questions[i].text for i in rng.choice(len(questions), args.questions, replace=False)]
    times: dict[str, list[float]] = {s: [] for s in SCORERS}
    for s in SCORERS:  # load each scorer once before the clock starts
        assistant.settings = settings.but(scorer=s)
        assistant.ask("warm up")
    for q in picked:
        for s in SCORERS:
            assistant.settings = settings.but(scorer=s)
            t = time.perf_counter()
            assistant.ask(q)
            times[s].append(1000 * (time.perf_counter() - t))
    one = {s: percentiles(v) for s, v in times.items()}
    batch: dict[str, dict[str, float]] = {}
    _, all_questions = load_squad(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        qfile = Path(tmp) / "questions.txt"
        qfile.write_text("\n".join(q.text for q in all_questions[: args.batch]) + "\n")
        for s in SCORERS:
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "qa",
                    "batch",
                    str(qfile),
                    "-o",
                    str(Path(tmp) / f"{s}.jsonl"),
                    "--index",
                    str(index_dir),
                    "--scorer",
                    s,
                ],
                check=True,
                capture_output=True,
            )
            seconds = time.perf_counter() - t
            batch[s] = {"seconds": round(seconds, 1), "questions_per_s": round(args.batch / seconds, 1)}
    emit(
        {
            "machine": machine(),
            "precision": assistant.settings.precision,
            "questions_through": "ONNX Runtime" if assistant.reader_onnx is not None else "torch",
            "index": str(index_dir),
            "one_question": one,
            "batch_with_startup": batch,
        },
        args.out,
    )
    Assistant.close(assistant)
    Assistant.close(built)


if __name__ == "__main__":
    main()
