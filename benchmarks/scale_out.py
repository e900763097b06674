"""Past one machine: the Qdrant backend against the embedded default, and the measured parts of a projection.

``same-answers``: SQuAD v1.1 dev (every paragraph a source, every question asked against the
whole index), built twice by qa from the same documents: the embedded default (FAISS + bm25s +
SQLite) and the Qdrant backend (Qdrant Edge in this process). Reports, side by side, recall@1/@5,
snippet accuracy@1 (as ``qa eval`` scores them), how often the top citation is the same, and the
latency of retrieval plus sentence choice per question (question vectors computed once, before).

``rates``: per-worker embedding throughput (the default model, chunks of SQuAD text), and Qdrant
upsert and query rates here: Qdrant Edge in-process and, briefly, qdrant-client's local mode.

``project``: the time and machines to index and serve 10M and 100M chunks, from a ``rates``
result and the assumptions printed with it.

    .venv/bin/python benchmarks/scale_out.py same-answers --out results/same_answers.json
    .venv/bin/python benchmarks/scale_out.py rates --out results/rates.json
    .venv/bin/python benchmarks/scale_out.py project --rates results/rates.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import emit, machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SQUAD = ROOT.parent / "shared" / "datasets" / "squad" / "dev-v1.1.json"


def same_answers(data: Path, work: Path, limit: int | None) -> dict:
    from qa.assistant import Assistant
    from qa.backends import Backend, open_index
    from qa.build import build_index
    from qa.embed import embedder_for
    from qa.evaluate import load_squad, score
    from qa.extract import answer
    from qa.settings import Settings

    settings = Settings()
    docs, questions = load_squad(data)
    if limit:
        questions = questions[:limit]
    embedder = embedder_for(settings)
    builds = {}
    started = time.perf_counter()
    build_index(work / "embedded", [], settings, embedder, documents=docs)
    builds["embedded"] = round(time.perf_counter() - started, 1)
    # The Qdrant index takes the embedded one's vectors over (as `qa index --backend qdrant` does on
    # an existing index): the same vectors a second encoding would give, without its hour here.
    if not (work / "qdrant-edge").exists():
        shutil.copytree(work / "embedded", work / "qdrant-edge")
    started = time.perf_counter()
    build_index(work / "qdrant-edge", [], settings, embedder, documents=docs, backend=Backend(path=str(work / "shard")))
    builds["qdrant-edge"] = round(time.perf_counter() - started, 1)
    vectors = embedder.embed([q.text for q in questions])
    results: dict[str, dict] = {}
    tops: dict[str, list[str | None]] = {}
    for name in ("embedded", "qdrant-edge"):
        assistant = Assistant(open_index(work / name), embedder, settings)
        times, top = [], []
        for q, v in zip(questions, vectors, strict=True):
            started = time.perf_counter()
            hits, scored = assistant.retrieve(q.text, v)
            result = answer(assistant.index, q.text, hits, scored, settings.but(abstain_below=-1.0), 1)
            times.append(time.perf_counter() - started)
            top.append(result.snippets[0].citation.id if result.snippets else None)
        metrics = score(assistant, questions, vectors, settings)
        ms = np.array(times) * 1000
        results[name] = {
            **{k: metrics[k] for k in ("recall@1", "recall@5", "snippet_accuracy@1", "verbatim_rate")},
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "build_s": builds[name],  # qdrant-edge: moving the vectors in, not encoding
        }
        tops[name] = top
    same = sum(a == b for a, b in zip(tops["embedded"], tops["qdrant-edge"], strict=True))
    return {
        "machine": machine(),
        "questions": len(questions),
        "chunks": open_index(work / "embedded").chunk_count,
        "same_top_citation": round(same / max(1, len(questions)), 4),
        "results": results,
        "latency": "retrieval + sentence choice per question, one at a time; question vectors computed beforehand",
    }


def rates(data: Path, work: Path, chunks: int, points: int, local_points: int) -> dict:
    """Embedding chunks per second on one worker, and Qdrant upsert/query rates."""
    from qa.backends import Backend
    from qa.backends.qdrant import BM25, CHUNK, bm25_sparse, engine_for
    from qa.embed import embedder_for
    from qa.evaluate import load_squad
    from qa.lexical import terms
    from qa.settings import Settings

    settings = Settings()
    docs, _ = load_squad(data)
    texts = [d.text for d in docs][:chunks]
    embedder = embedder_for(settings)
    embedder.embed(texts[:32])
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    embed_rate = len(texts) / (time.perf_counter() - started)
    rng = np.random.default_rng(0)
    # Points shaped like qa's: real vectors and BM25 of SQuAD paragraphs, repeated with noise to ``points``.
    words = [terms(t) for t in texts]
    avgdl = sum(map(len, words)) / len(words)
    sparse = [bm25_sparse(w, avgdl) for w in words]

    def point(i: int) -> tuple[int, dict, dict]:
        j = i % len(texts)
        v = vectors[j] + rng.normal(0, 0.02, vectors.shape[1]).astype(np.float32)
        v /= np.linalg.norm(v)
        return (i, {CHUNK: v, BM25: sparse[j]}, {"doc": f"{j:016x}", "n": i // len(texts)})

    out: dict = {"machine": machine(), "embed_chunks_per_s_one_worker": round(embed_rate, 1), "embed_batch": len(texts)}
    for name, count in (("edge", points), ("client_local", local_points)):
        if name == "edge":
            engine = engine_for(Backend(path=str(work / "rate-shard")))
        else:
            from qdrant_client import QdrantClient

            engine = engine_for(Backend(url="http://local", collection="rates"), QdrantClient(location=":memory:"))
        engine.create(vectors.shape[1], clear=True)
        started = time.perf_counter()
        for at in range(0, count, 256):
            engine.upsert([point(i) for i in range(at, min(count, at + 256))])
        engine.finish()
        upsert = count / (time.perf_counter() - started)
        queries = [(vectors[i], sparse[i]) for i in rng.integers(0, len(texts), 50 if name == "edge" else 10)]
        times = []
        for q, s in queries:
            started = time.perf_counter()
            engine.query([(CHUNK, q, 50, count <= 200_000), (BM25, s, 50, False)])
            times.append(1000 * (time.perf_counter() - started))
        out[name] = {
            "points": count,
            "upsert_points_per_s": round(upsert, 1),
            "hybrid_query_p50_ms": round(float(np.percentile(times, 50)), 2),
            "hybrid_query_p95_ms": round(float(np.percentile(times, 95)), 2),
        }
    return out


def project(rates: dict) -> dict:
    """Time and machines for 10M and 100M chunks, from measured rates and stated assumptions."""
    per_worker = rates["embed_chunks_per_s_one_worker"]
    assumptions = {
        "sentences_per_chunk": 4,
        "dimension": 384,
        # chunk f32 + four sentence f16 + payload, BM25 terms and graph links
        "bytes_per_chunk_point": 384 * 4 + 4 * 384 * 2 + 600,
        "shard_ram_gb": 32,
        "replicas": 2,
        "gpu_speedup_over_one_cpu_worker": 40,
        "workers_cpu": 64,
        "workers_gpu": 8,
    }
    out = {"assumptions": assumptions, "measured": rates}
    for n in (10_000_000, 100_000_000):
        data_gb = n * assumptions["bytes_per_chunk_point"] / 1e9
        shards = max(1, int(np.ceil(data_gb / (assumptions["shard_ram_gb"] * 0.7))))
        cpu_h = n / (per_worker * assumptions["workers_cpu"]) / 3600
        gpu_h = n / (per_worker * assumptions["gpu_speedup_over_one_cpu_worker"] * assumptions["workers_gpu"]) / 3600
        out[f"{n // 1_000_000}M"] = {
            "index_gb": round(data_gb, 1),
            "shards": shards,
            "machines_serving": shards * assumptions["replicas"],
            "embed_hours_64_cpu_workers": round(cpu_h, 1),
            "embed_hours_8_gpus": round(gpu_h, 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("same-answers")
    a.add_argument("--data", type=Path, default=SQUAD)
    a.add_argument("--limit", type=int, default=None, help="only the first N questions")
    r = sub.add_parser("rates")
    r.add_argument("--data", type=Path, default=SQUAD)
    r.add_argument("--chunks", type=int, default=512, help="SQuAD paragraphs embedded for the rate")
    r.add_argument("--points", type=int, default=50_000, help="points upserted into Qdrant Edge")
    r.add_argument("--local-points", type=int, default=2_000, help="points upserted in client local mode")
    p = sub.add_parser("project")
    p.add_argument("--rates", type=Path, required=True)
    for s in (a, r, p):
        s.add_argument("--out", type=Path, default=None)
        s.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="qa-scale-out-"))
    try:
        if args.what == "same-answers":
            emit(same_answers(args.data, work, args.limit), args.out)
        elif args.what == "rates":
            emit(rates(args.data, work, args.chunks, args.points, args.local_points), args.out)
        else:
            import json

            emit(project(json.loads(args.rates.read_text())), args.out)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
