"""Dense search and fusion against corpus size, with synthetic vectors of the model's shape.

The vectors are synthetic (384-d, unit length, drawn around 2,000 random centres so that they
cluster like sentence embeddings), because only FAISS and the fusion are measured here; the real
model and text are measured by build_speed.py. For each size it reports exact (flat) search on one
and two threads, HNSW over 8-bit vectors (build time, latency, recall@50 against exact search at
several efSearch), the memory each index takes, and the fusion step. Writes JSON and a PNG plot.

    .venv/bin/python benchmarks/query_speed.py --sizes 2000 100000 1000000 --out results/query_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import faiss
import numpy as np
from common import machine, percentiles, timer

from qa.dense import make_dense
from qa.retrieve import fuse
from qa.settings import Settings

DIM = 384
K = 50


def synthetic(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 2000, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    faiss.normalize_L2(x)
    return x


def timed(index, queries: np.ndarray) -> tuple[list[float], np.ndarray]:  # type: ignore[no-untyped-def]
    out: list[float] = []
    ids = []
    for q in queries:
        with timer(out):
            _, i = index.search(q.reshape(1, -1), K)
        ids.append(i[0])
    return out, np.array(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        base = synthetic(n, rng)
        queries = synthetic(args.queries, rng)
        flat = make_dense("flat", base)
        row: dict = {"chunks": n, "flat_mb": round(base.nbytes / 2**20, 1)}
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            lat, exact = timed(flat, queries)
            row[f"flat_{threads}thread_ms_p50"], row[f"flat_{threads}thread_ms_p95"] = percentiles(lat, 3)
        faiss.omp_set_num_threads(1)
        t = time.perf_counter()
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        hnsw = make_dense("hnsw", base)
        row["hnsw_build_s"] = round(time.perf_counter() - t, 1)
        faiss.omp_set_num_threads(1)
        row["hnsw_mb"] = round(faiss.serialize_index(hnsw).nbytes / 2**20, 1)
        for ef in (64, 128, 256):
            hnsw.hnsw.efSearch = ef
            lat, got = timed(hnsw, queries)
            recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(got, exact, strict=True)])
            row[f"hnsw_ef{ef}_ms_p50"], row[f"hnsw_ef{ef}_ms_p95"] = percentiles(lat, 3)
            row[f"hnsw_ef{ef}_recall@50"] = round(float(recall), 4)
        dense, lexical = rng.random(100), rng.random(100) * 20
        t = time.perf_counter()
        for _ in range(1000):
            fuse(dense, lexical, Settings())
        row["fusion_ms"] = round((time.perf_counter() - t), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "machine": machine(),
        "note": "synthetic vectors; baseline = exact (flat) search in the same run",
        "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        plot(rows, args.out.with_suffix(".png"))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["chunks"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label in (
        ("flat_1thread_ms_p95", "exact, 1 thread"),
        ("flat_2thread_ms_p95", "exact, 2 threads"),
        ("hnsw_ef128_ms_p95", "HNSW-SQ8 efSearch 128"),
    ):
        ax.plot(sizes, [r[key] for r in rows], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chunks")
    ax.set_ylabel("dense search p95 (ms)")
    ax.set_title("Dense search latency against corpus size (synthetic 384-d vectors)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
