"""Index build throughput against the raw encoder on the same text, query latency, index size.

Builds an index of the SQuAD v1.1 dev paragraphs (2,067 documents) from scratch, then encodes the
very same chunk texts with a bare ``SentenceTransformer.encode`` (the baseline, measured in the same
run), and reports chunks/s for both and their ratio (best of --repeat alternating runs of each).
Then asks SQuAD questions one at a time (end to end: encode, both retrievers, fusion, sentence
choice) and in batches, and reports latency p50/p95, questions/s, and the index's size.

    .venv/bin/python benchmarks/build_speed.py --data ../shared/datasets/squad/dev-v1.1.json --out results/build.json

With ``--corpus DIR`` it builds that folder's documents instead (long documents: PDFs, books),
parsed beforehand as the SQuAD paragraphs are, and reports the build against the bare encoder only.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from common import emit, machine, percentiles, timer

from qa import Assistant, Settings
from qa.assistant import embedder_for
from qa.build import build_index, chunk_texts
from qa.chunk import chunk_document
from qa.evaluate import load_squad
from qa.ingest import discover, read_document

ROOT = Path(__file__).resolve().parents[1]


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/squad/dev-v1.1.json")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"])
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2, help="builds and bare encodes, best of each reported")
    parser.add_argument("--corpus", type=Path, default=None, help="a folder of documents instead of SQuAD")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    settings = Settings(precision=args.precision)
    if args.corpus is not None:
        files, _ = discover([args.corpus])
        docs = [read_document(f, int(settings.max_file_mb * 1_000_000))[0] for f in files]
        questions = []
    else:
        docs, questions = load_squad(args.data)
    embedder = embedder_for(settings)
    embedder.embed(["warm up"])
    texts = []
    for d in docs:
        _, cs = chunk_document(d, embedder.tokenizer, settings.chunk_tokens, settings.chunk_overlap, True)
        texts += chunk_texts(d, cs, True)
    with tempfile.TemporaryDirectory() as tmp:
        # Build and bare encode alternate, best of --repeat each: this machine's speed drifts by
        # several percent from minute to minute.
        builds, raws = [], []
        for n in range(args.repeat):
            index_dir = Path(tmp) / f"index-{n}"
            started = time.perf_counter()
            report = build_index(index_dir, [], settings, embedder, documents=docs)
            builds.append(time.perf_counter() - started)
            chunks = report.embedded_chunks
            started = time.perf_counter()
            embedder.model.encode(texts, batch_size=settings.batch_size, normalize_embeddings=True)
            raws.append(time.perf_counter() - started)
        build_s, raw_s = min(builds), min(raws)
        result = {
            "machine": machine(),
            "precision": embedder.precision,
            "corpus": str(args.corpus or args.data),
            "documents": len(docs),
            "characters": sum(len(d.text) for d in docs),
            "chunks": chunks,
            "build_seconds_all": [round(x, 1) for x in builds],
            "raw_encode_seconds_all": [round(x, 1) for x in raws],
            "build_chunks_per_s": round(chunks / build_s, 1),
            "raw_encode_chunks_per_s": round(len(texts) / raw_s, 1),
            "build_to_raw_ratio": round((chunks / build_s) / (len(texts) / raw_s), 3),
        }
        if not questions:
            emit(result, args.out)
            return

        assistant = Assistant.open(index_dir, embedder=embedder)
        asked = [q.text for q in questions[: args.questions]]
        latencies: list[float] = []
        for q in asked:
            with timer(latencies):
                assistant.ask(q)
        started = time.perf_counter()
        assistant.ask_many(asked)
        batch_s = time.perf_counter() - started
        gen = next(index_dir.glob("gen-*"))
        result = {
            "machine": machine(),
            "precision": embedder.precision,
            "documents": len(docs),
            "chunks": chunks,
            "build_seconds": round(build_s, 1),
            "build_seconds_all": [round(x, 1) for x in builds],
            "raw_encode_seconds_all": [round(x, 1) for x in raws],
            "build_chunks_per_s": round(chunks / build_s, 1),
            "raw_encode_chunks_per_s": round(len(texts) / raw_s, 1),
            "build_to_raw_ratio": round((chunks / build_s) / (len(texts) / raw_s), 3),
            "single_question_ms_p50": percentiles(latencies, 1)[0],
            "single_question_ms_p95": percentiles(latencies, 1)[1],
            "one_at_a_time_questions_per_s": round(1000 * len(latencies) / sum(latencies), 1),
            "batch_questions_per_s": round(len(asked) / batch_s, 1),
            "index_bytes_on_disk": folder_size(gen),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "vectors_bytes": int(np.load(gen / "chunks.npy", mmap_mode="r").nbytes),
        }
    emit(result, args.out)


if __name__ == "__main__":
    main()
