"""End-to-end question latency, throughput, memory and open time at 2k, 100k and 1M chunks.

What is real and what is not:

- Every index holds the 2,067 SQuAD v1.1 dev paragraphs (2,547 chunks) built by qa itself: real
  text, real vectors. The 2k point is that index alone.
- The larger indexes add distractor chunks made of real sentences: those of the HotpotQA, MS MARCO
  and DBpedia passages in ../shared/datasets (not SQuAD, so the gold answers stay unique), each
  sentence embedded by the real model. A distractor document is 20 sentences drawn from a window of
  60 neighbouring sentences (so it keeps to a topic), cut into 5 chunks of 4; a chunk's vector is
  the normalised mean of its sentences' vectors. Text, BM25 and sentence vectors are therefore real;
  chunk vectors are synthetic but shaped like the model's (encoding a million chunks whole would
  take about four hours on two cores).
- Questions are SQuAD dev questions, encoded live by the model in every ask: the latency is end to
  end (encode, both retrievers, fusion, sentence choice) through ``Assistant.ask``.

Baselines measured in the same run: exact search over the same vectors (latency, and the reference
for the dense recall of the index qa chose), and the encoder alone on each question. Each size is
built by one process and served by a fresh one, started cold (the index files evicted from the page
cache) inside a memory cgroup capped at 2 GB where the machine allows one; its memory is what
serving takes.

    .venv/bin/python benchmarks/scale.py --data ../shared/datasets --sizes 2000 100000 1000000 \\
        --out results/scale.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import emit, machine, percentiles

ROOT = Path(__file__).resolve().parents[1]
DOC_SENTENCES, CHUNK_SENTENCES, WINDOW = 20, 4, 60
K = 50


def memory() -> dict[str, float]:
    """Resident memory of this process, MB: all, anonymous (heap) and file-backed (mapped files)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best positive scores' positions, unordered: the lexical step as qa's retrieval takes it."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) <= n:
        return positive
    return positive[np.argpartition(-scores[positive], n - 1)[:n]]


# ---- the sentence pool ------------------------------------------------------------------------


def pool_texts(data: Path) -> list[str]:
    texts = []
    with open(data / "hotpotqa/hotpot_dev_distractor_first100.json", encoding="utf-8") as f:
        for item in json.load(f):
            texts += ["".join(s) for s in item["context"]["sentences"]]
    for name in ("msmarco", "dbpedia"):
        with open(data / f"beir_subsets/{name}/corpus.jsonl", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    return texts


def sentence_pool(data: Path, work: Path, embedder) -> tuple[list[str], np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Distinct real sentences in source order, their token counts and their vectors (cached)."""
    from qa.chunk import split_sentences
    from qa.types import Document

    cache = work / "pool.npz"
    if cache.exists():
        saved = np.load(cache, allow_pickle=False)
        return list(saved["sentences"]), saved["tokens"], saved["vectors"]
    seen: dict[str, None] = {}
    for i, text in enumerate(pool_texts(data)):
        for a, b in split_sentences(Document(f"{i:016x}", "pool", "", text, "txt")):
            if b - a >= 20:
                seen.setdefault(" ".join(text[a:b].split()))
    sentences = list(seen)
    started = time.perf_counter()
    vectors = embedder.embed(sentences).astype(np.float16)
    print(f"pool: {len(sentences)} sentences embedded in {time.perf_counter() - started:.0f} s", flush=True)
    tokens = np.array(embedder.tokenizer.count(sentences), dtype=np.int32)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, sentences=np.array(sentences), tokens=tokens, vectors=vectors)
    return sentences, tokens, vectors


# ---- building one size ------------------------------------------------------------------------


def squad_index(data: Path, work: Path, settings, embedder) -> tuple[Path, float, int]:  # type: ignore[no-untyped-def]
    from qa.build import build_index
    from qa.evaluate import load_squad

    index_dir = work / "index-squad"
    docs, _ = load_squad(data / "squad/dev-v1.1.json")
    started = time.perf_counter()
    report = build_index(index_dir, [], settings, embedder, documents=docs)
    return index_dir, time.perf_counter() - started, report.embedded_chunks


def build(size: int, data: Path, work: Path) -> dict:
    from qa.assistant import embedder_for
    from qa.build import chunk_texts
    from qa.dense import dense_description, make_dense
    from qa.index import Index
    from qa.manifest import FORMAT_VERSION, Manifest
    from qa.settings import Settings
    from qa.store import transaction
    from qa.types import Chunk, Document, Sentence
    from qa.writer import write_generation

    settings = Settings()
    embedder = embedder_for(settings)
    squad_dir, squad_s, embedded = squad_index(data, work, settings, embedder)
    row: dict = {"size": size}
    if size <= 2547:
        index_dir = squad_dir
        row.update(chunks=embedded or Index.open(squad_dir).chunk_count, build_s=round(squad_s, 1))
        return {**row, "index_dir": str(index_dir)}
    index_dir = work / f"index-{size}"
    record = work / f"build-{size}.json"
    if (index_dir / "CURRENT").exists() and record.exists():  # built by an earlier run: its figures
        return {**json.loads(record.read_text()), "reused": True}
    sentences, tokens, pool_vectors = sentence_pool(data, work, embedder)
    started = time.perf_counter()
    squad = Index.open(squad_dir)
    docs, chunk_vecs, sent_vecs, texts = [], [squad.chunk_vectors[:]], [squad.sentence_vectors[:]], []
    for r in squad.document_rows():
        stored = squad.document(r)
        sents = squad.sentences(stored.sent_lo, stored.sent_hi)
        chunks = squad.chunks(list(range(stored.chunk_lo, stored.chunk_hi)))
        docs.append((stored.document, sents, chunks))
        texts += chunk_texts(stored.document, chunks, settings.title_in_chunks)
    squad.close()
    rng = np.random.default_rng(size)
    per_doc = DOC_SENTENCES // CHUNK_SENTENCES
    n_docs = -(-(size - len(texts)) // per_doc)
    starts = rng.integers(0, len(sentences) - WINDOW, n_docs)
    picks = np.sort(np.argsort(rng.random((n_docs, WINDOW)), axis=1)[:, :DOC_SENTENCES], axis=1) + starts[:, None]
    dim = pool_vectors.shape[1]
    for d in range(n_docs):
        ids = picks[d]
        doc_id = f"{d:016x}"
        parts, spans, at = [], [], 0
        for s in ids:
            parts.append(sentences[s])
            spans.append(Sentence(doc_id, at, at + len(sentences[s]), None, int(tokens[s])))
            at += len(sentences[s]) + 1
        text = " ".join(parts)
        chunks = []
        for c in range(per_doc):
            first, last = c * CHUNK_SENTENCES, (c + 1) * CHUNK_SENTENCES
            used = sum(x.tokens for x in spans[first:last])
            chunks.append(Chunk(doc_id, spans[first].start, spans[last - 1].end, None, first, last, used))
        document = Document(doc_id, f"distractors/{d:07d}.txt", "", text, "txt")
        docs.append((document, spans, chunks))
        texts += [text[x.start : x.end] for x in chunks]
    flat_ids = picks.reshape(-1)
    sent_vecs.append(pool_vectors[flat_ids])
    for at in range(0, len(flat_ids), 400_000):
        block = pool_vectors[flat_ids[at : at + 400_000]].astype(np.float32).reshape(-1, CHUNK_SENTENCES, dim)
        mean = block.mean(axis=1)
        chunk_vecs.append(mean / np.linalg.norm(mean, axis=1, keepdims=True))
    chunk_vectors = np.concatenate(chunk_vecs).astype(np.float32)
    sentence_vectors = np.concatenate(sent_vecs)
    row["assemble_s"] = round(time.perf_counter() - started, 1)
    row["chunks"] = len(chunk_vectors)
    described = dense_description(settings.dense_index, len(chunk_vectors))
    started = time.perf_counter()
    dense = make_dense(described["type"], chunk_vectors)
    row["dense_build_s"] = round(time.perf_counter() - started, 1)
    manifest = {
        "format": FORMAT_VERSION,
        "model": {
            "name": settings.model,
            "dimension": dim,
            "max_tokens": embedder.tokenizer.max_tokens,
            "precision": embedder.precision,
        },
        "settings": {**settings.index_fields(), "precision": embedder.precision},
        "dense": described,
        "roots": [],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {"documents": len(docs), "chunks": len(chunk_vectors), "sentences": len(sentence_vectors)},
        "files": {},
        "skipped": {},
        "note": "benchmarks/scale.py: SQuAD dev paragraphs plus distractors of real sentences",
    }
    started = time.perf_counter()
    parsed = Manifest.from_json(manifest, index_dir)
    with transaction(index_dir) as txn:
        txn.publish(
            lambda staging: write_generation(staging, parsed, docs, chunk_vectors, sentence_vectors, texts, dense)
        )
    row["write_s"] = round(time.perf_counter() - started, 1)  # SQLite, vectors, FAISS file and BM25
    row["build_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    row["index_dir"] = str(index_dir)
    record.write_text(json.dumps(row))
    return row


# ---- serving one size -------------------------------------------------------------------------


def drop_from_page_cache(folder: Path) -> None:
    """Evict the index files from the page cache, so serving starts cold, as after a reboot."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def limit_memory(mb: int) -> Path | None:
    """Put this process in a memory cgroup capped at ``mb``; the file with its peak use, or None."""
    name = f"qa-scale-{os.getpid()}"
    for root, limit, peak in (
        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.max_usage_in_bytes"),  # cgroup v1
        ("/sys/fs/cgroup", "memory.max", "memory.peak"),  # cgroup v2
    ):
        group = Path(root) / name
        try:
            group.mkdir()
            (group / limit).write_text(str(mb * 2**20))
            (group / "cgroup.procs").write_text(str(os.getpid()))
            if (group / peak).exists():
                return group / peak
        except OSError:
            continue
    return None


def serve(index_dir: Path, data: Path, work: Path, questions: int, batch: int, limit_mb: int, warmup: int) -> dict:
    from qa import Assistant
    from qa.evaluate import load_squad
    from qa.index import Index
    from qa.lexical import terms
    from qa.retrieve import dense_candidates

    _, qs = load_squad(data / "squad/dev-v1.1.json")
    rng = np.random.default_rng(0)
    picked = [qs[i] for i in rng.choice(len(qs), questions + batch + warmup, replace=False)]
    asked, batched = [q.text for q in picked[:questions]], [q.text for q in picked[questions : questions + batch]]
    warming = [q.text for q in picked[questions + batch :]]
    gold = [q.doc_id for q in picked[:questions]]

    peak_file = limit_memory(limit_mb) if limit_mb else None
    drop_from_page_cache(index_dir)
    started = time.perf_counter()
    assistant = Assistant.open(index_dir)
    open_s = time.perf_counter() - started
    started = time.perf_counter()
    assistant.embedder.embed(["load the model"])
    model_s = time.perf_counter() - started
    started = time.perf_counter()
    assistant.ask(asked[0])
    first_s = time.perf_counter() - started
    index: Index = assistant.index
    settings = assistant.settings
    cold_ms = []  # the first questions after a cold start, while the index files come into memory
    for q in warming:
        t = time.perf_counter()
        assistant.ask(q)
        cold_ms.append(1000 * (time.perf_counter() - t))

    ask_ms, hits = [], 0
    for q, doc_id in zip(asked, gold, strict=True):
        t = time.perf_counter()
        answer = assistant.ask(q)
        ask_ms.append(1000 * (time.perf_counter() - t))
        hits += bool(answer.snippets) and answer.snippets[0].citation.id.startswith(doc_id[:12])
    vectors, encode_ms = [], []
    for q in asked:
        t = time.perf_counter()
        vectors.append(assistant.embedder.embed([q])[0])
        encode_ms.append(1000 * (time.perf_counter() - t))
    dense_ms, lexical_ms, got = [], [], []
    for v in vectors:
        t = time.perf_counter()
        got.append(dense_candidates(index, v.reshape(1, -1), settings)[0])
        dense_ms.append(1000 * (time.perf_counter() - t))
    for q in asked:
        t = time.perf_counter()
        top_positive(index.lexical.scores(terms(q)), settings.candidates)
        lexical_ms.append(1000 * (time.perf_counter() - t))
    started = time.perf_counter()
    assistant.ask_many(batched)
    batch_s = time.perf_counter() - started
    np.savez(work / "served.npz", vectors=np.array(vectors, dtype=np.float32), got=np.array(got))
    gen = index.gen
    return {
        "chunks": index.chunk_count,
        "dense_index": index.manifest.dense["type"],
        "cold_open_s": round(open_s, 2),
        "model_load_s": round(model_s, 2),
        "cold_first_question_s": round(first_s, 2),
        "cold_ask_ms_p50": percentiles(cold_ms)[0],
        "cold_ask_ms_p95": percentiles(cold_ms)[1],
        "ask_ms_p50": percentiles(ask_ms)[0],
        "ask_ms_p95": percentiles(ask_ms)[1],
        "encode_ms_p50": percentiles(encode_ms)[0],
        "encode_ms_p95": percentiles(encode_ms)[1],
        "dense_ms_p50": percentiles(dense_ms)[0],
        "dense_ms_p95": percentiles(dense_ms)[1],
        "lexical_ms_p50": percentiles(lexical_ms)[0],
        "lexical_ms_p95": percentiles(lexical_ms)[1],
        "batch_questions_per_s": round(len(batched) / batch_s, 1),
        "squad_top_snippet_in_gold_paragraph": round(hits / len(asked), 4),
        "memory_mb": memory(),
        "memory_limit_mb": limit_mb if peak_file else None,
        "cgroup_peak_mb": round(int(peak_file.read_text()) / 2**20, 1) if peak_file else None,
        "index_mb_on_disk": round(sum(p.stat().st_size for p in gen.rglob("*") if p.is_file()) / 2**20, 1),
    }


def exact_baseline(index_dir: Path, work: Path) -> dict:
    """Exact search over the same vectors, one thread: its latency, and the recall of qa's dense search."""
    import faiss

    from qa.index import Index

    index = Index.open(index_dir)
    served = np.load(work / "served.npz")
    vectors, got = served["vectors"], served["got"]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    for at in range(0, index.chunk_count, 200_000):
        exact.add(np.ascontiguousarray(index.chunk_vectors[at : at + 200_000], dtype=np.float32))
    faiss.omp_set_num_threads(1)
    exact_ms, truth = [], []
    for v in vectors:
        t = time.perf_counter()
        truth.append(exact.search(v.reshape(1, -1), K)[1][0])
        exact_ms.append(1000 * (time.perf_counter() - t))
    recall = float(np.mean([len(set(a[:K]) & set(b)) / K for a, b in zip(got, truth, strict=True)]))
    row = {
        "exact_search_ms_p50": percentiles(exact_ms)[0],
        "exact_search_ms_p95": percentiles(exact_ms)[1],
        "dense_recall@50_vs_exact": round(recall, 4),
    }
    if hasattr(index.dense, "hnsw"):  # what other efSearch values would give, on the same questions
        from qa.retrieve import dense_candidates
        from qa.settings import Settings

        for ef in (128, 512, 1024, 1536):
            took, found = [], []
            for v in vectors:
                t = time.perf_counter()
                found.append(dense_candidates(index, v.reshape(1, -1), Settings(hnsw_ef_search=ef))[0])
                took.append(1000 * (time.perf_counter() - t))
            row[f"ef{ef}_recall@50"] = round(
                float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)])), 4
            )
            row[f"ef{ef}_ms_p50"] = percentiles(took)[0]
    return row


# ---- driver -----------------------------------------------------------------------------------


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["chunks"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (
        ("ask_ms_p95", "question end to end, p95"),
        ("ask_ms_p50", "question end to end, p50"),
        ("exact_search_ms_p50", "exact search alone, p50 (baseline)"),
        ("dense_ms_p50", "dense search qa uses, p50"),
        ("lexical_ms_p50", "BM25, p50"),
        ("encode_ms_p50", "encoding the question, p50"),
    ):
        left.plot(sizes, [r[key] for r in rows], marker="o", label=label)
    left.axhline(30, color="grey", linestyle=":", linewidth=1)
    left.axhline(100, color="grey", linestyle=":", linewidth=1)
    left.set(xscale="log", yscale="log", xlabel="chunks", ylabel="ms", title="Latency against corpus size")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    right.plot(sizes, [r["batch_questions_per_s"] for r in rows], marker="o", label="batch (ask_many)")
    right.plot(sizes, [1000 / r["ask_ms_p50"] for r in rows], marker="o", label="one at a time (1000 / p50)")
    right.set(xscale="log", xlabel="chunks", ylabel="questions/s", title="Throughput against corpus size")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=ROOT / "results/scale", help="indexes are built (and kept) here")
    parser.add_argument("--questions", type=int, default=500, help="questions asked one at a time per size")
    parser.add_argument("--batch", type=int, default=1000, help="questions asked as one batch per size")
    parser.add_argument(
        "--warmup", type=int, default=300, help="questions asked first after a cold start, reported apart"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--memory-limit-mb", type=int, default=2048, help="serve each size in a memory cgroup this big (0: no cap)"
    )
    parser.add_argument("--child", choices=("build", "serve"), help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "build":
        print(json.dumps(build(args.sizes[0], args.data, args.work)))
        return
    if args.child == "serve":
        served = serve(args.index, args.data, args.work, args.questions, args.batch, args.memory_limit_mb, args.warmup)
        print(json.dumps(served))
        return
    rows = []
    for size in args.sizes:
        built = run_child("--child", "build", "--sizes", str(size), "--data", str(args.data), "--work", str(args.work))
        print(json.dumps(built), file=sys.stderr, flush=True)
        served = run_child(
            "--child", "serve", "--index", built["index_dir"], "--data", str(args.data), "--work", str(args.work),
            "--questions", str(args.questions), "--batch", str(args.batch), "--warmup", str(args.warmup),
            "--memory-limit-mb", str(args.memory_limit_mb),
        )  # fmt: skip
        for group in Path("/sys/fs/cgroup").glob("*/qa-scale-*"):  # the serving child's, now empty
            with contextlib.suppress(OSError):
                group.rmdir()
        row = {"build": built, **served, **exact_baseline(Path(built["index_dir"]), args.work)}
        row["ask_p95_over_encode_p95"] = round(row["ask_ms_p95"] / row["encode_ms_p95"], 2)
        row["dense_p50_over_exact_p50"] = round(row["dense_ms_p50"] / row["exact_search_ms_p50"], 3)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "benchmark": "scale",
        "machine": machine(),
        "notes": __doc__.split("What is real and what is not:")[1].split("Baselines")[0].strip(),
        "baselines": "exact_search_* is exact FAISS search over the same vectors on one thread; encode_ms is the "
        "encoder alone on each question",
        "serving": "each size is served by a fresh process in a memory cgroup capped at memory_limit_mb (where the "
        "machine allows one), with the index files evicted from the page cache first: cold_* figures are a start "
        "after a reboot (cold_ask_*: the first --warmup questions), the other latencies are the steady state "
        "after them; memory_mb is the process's resident memory (RssFile: mapped index files)",
        "rows": rows,
    }
    emit(result, args.out)
    if args.out:
        plot(rows, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
