"""Encoder throughput at each precision qa offers, as a ratio to fp32 measured in the same run.

Encodes the same SQuAD v1.1 dev paragraphs (title line + text, as qa indexes them) with
all-MiniLM-L6-v2 in fp32, bf16 and int8, at qa's batch size, after a warm-up, in alternating
rounds, and reports each precision's best round as passages/s and tokens/s, then the latency of
encoding single SQuAD questions (p50/p95). The quality side of the choice comes from
``qa eval --precision P`` (README, Performance).

    .venv/bin/python benchmarks/encoder.py --data ../shared/datasets/squad/dev-v1.1.json --out results/encoder.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import emit, machine, percentiles, timer

from qa.embed import SentenceTransformerEmbedder
from qa.evaluate import load_squad
from qa.settings import Settings, auto_precision

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/squad/dev-v1.1.json")
    parser.add_argument("--passages", type=int, default=384)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--questions", type=int, default=300, help="encoded one at a time, for latency")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    docs, questions = load_squad(args.data)
    asked = [q.text for q in questions[: args.questions]]
    texts = [f"{d.title}\n{d.text}" for d in docs[: args.passages]]
    batch = Settings().batch_size
    embedders = {p: SentenceTransformerEmbedder(batch_size=batch, precision=p) for p in args.precisions}
    tokens = sum(min(n + 2, 256) for n in next(iter(embedders.values())).tokenizer.count(texts))
    for embedder in embedders.values():
        embedder.embed(texts[:32])
    # Rounds alternate the precisions so that a slow spell of a shared machine hits them all alike;
    # each precision's best round is its speed.
    seconds: dict[str, list[float]] = {p: [] for p in embedders}
    for _ in range(args.rounds):
        for precision, embedder in embedders.items():
            started = time.perf_counter()
            embedder.embed(texts)
            seconds[precision].append(time.perf_counter() - started)
    # One question at a time, as `qa ask` encodes them; precisions alternate question by question.
    latency: dict[str, list[float]] = {p: [] for p in embedders}
    for text in asked:
        for precision, embedder in embedders.items():
            with timer(latency[precision]):
                embedder.embed([text])
    # What int8 (and bf16) must keep: every vector at least 0.95 cosine to fp32's (tests/test_embed.py);
    # SQuAD snippet accuracy within half a point of fp32 comes from `qa eval --precision P`.
    reference = SentenceTransformerEmbedder(batch_size=batch, precision="fp32").embed(texts)
    rows = []
    for precision, spent in seconds.items():
        rows.append(
            {
                "precision": precision,
                "min_cosine_to_fp32": round(float(np.min(np.sum(embedders[precision].embed(texts) * reference, 1))), 4),
                "passages_per_s": round(len(texts) / min(spent), 1),
                "tokens_per_s": round(tokens / min(spent)),
                "passages_per_s_each_round": [round(len(texts) / s, 1) for s in spent],
                "question_ms_p50": percentiles(latency[precision])[0],
                "question_ms_p95": percentiles(latency[precision])[1],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    base = next((r["passages_per_s"] for r in rows if r["precision"] == "fp32"), None)
    for row in rows:
        row["ratio_to_fp32"] = round(row["passages_per_s"] / base, 2) if base else None
    result = {
        "machine": machine(),
        "auto_precision": auto_precision(),
        "passages": len(texts),
        "batch_size": batch,
        "rounds": args.rounds,
        "rows": rows,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
