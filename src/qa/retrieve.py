"""Dense (FAISS) and lexical (BM25) search over chunks, and their fusion.

The fusion and its weight were chosen on SQuAD v1.1 dev articles 0-23 (``qa eval --tune``): a
convex combination of min-max normalised scores beat reciprocal-rank fusion there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .index import Index
from .settings import Settings


@dataclass(frozen=True)
class Hit:
    """A candidate chunk with its fused score and the scores it came from."""

    chunk: int
    score: float
    dense: float
    lexical: float


def dense_candidates(index: Index, queries: np.ndarray, settings: Settings) -> np.ndarray:
    """The dense top candidates of each query, one FAISS call for the whole batch (-1 pads).

    Exact search of a single question runs on one thread: OpenMP's start-up costs more than the
    second core gives back (benchmarks/query_speed.py). Approximate (HNSW over 8-bit vectors)
    search fetches ``hnsw_oversample`` times the candidates and keeps the best by their exact
    float32 scores, which recovers most of what the graph and the quantisation miss.
    """
    n = min(settings.candidates, index.chunk_count)
    if n == 0:
        return np.full((len(queries), 0), -1, dtype=np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(queries), -1)
    _use_blas_for_batches(queries.shape[1])
    approximate = hasattr(index.dense, "hnsw")
    k = min(n * settings.hnsw_oversample, index.chunk_count) if approximate else n
    with _omp_threads(1 if len(queries) == 1 else 0):
        if approximate:
            import faiss

            params = faiss.SearchParametersHNSW(efSearch=max(settings.hnsw_ef_search, k))
            _, ids = index.dense.search(queries, k, params=params)
        else:
            _, ids = index.dense.search(queries, k)
    if k > n:
        ids = np.stack([_exact_best(index.chunk_vectors, q, row, n) for q, row in zip(queries, ids, strict=True)])
    return ids


BLAS_FROM_QUERIES = 8


def _use_blas_for_batches(dimension: int) -> None:
    """Exact search of 8 or more questions at once as one matrix product (BLAS), of fewer without.

    FAISS 1.15 switches to BLAS when queries x dimension reaches ``distance_compute_blas_threshold``
    (default 128,000: 333 questions here). At 100k chunks, 300 questions took 2.1 s without BLAS
    and 0.25 s with it; one question takes 6.6 ms without and 29 ms with.
    """
    import faiss

    faiss.cvar.distance_compute_blas_threshold = BLAS_FROM_QUERIES * dimension


def _exact_best(vectors: np.ndarray, query: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` of ``ids`` with the highest exact scores, best first, -1 padded."""
    ids = np.sort(ids[ids >= 0])  # in file order: the rows are read from a memory map
    scores = np.asarray(vectors[ids], dtype=np.float32) @ query
    ids = ids[np.argsort(-scores, kind="stable")[:n]]
    return np.concatenate([ids, np.full(n - len(ids), -1, dtype=np.int64)])


@contextmanager
def _omp_threads(count: int) -> Iterator[None]:
    """Run FAISS on ``count`` OpenMP threads (0: leave as is). The setting is per calling thread."""
    if count <= 0:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search(
    index: Index, query: np.ndarray, query_terms: list[str], settings: Settings, dense_ids: np.ndarray | None = None
) -> list[Hit]:
    """Candidate chunks for one query, best first (``dense_ids``: its dense candidates, if known)."""
    n = min(settings.candidates, index.chunk_count)
    if n == 0:
        return []
    if hasattr(index, "hybrid_search"):  # qa.backends: both candidate lists in one request, fused as below
        return index.hybrid_search(query, query_terms, settings)
    if dense_ids is None:
        dense_ids = dense_candidates(index, query.reshape(1, -1), settings)[0]
    lexical_all = index.lexical.scores(query_terms)
    lexical_ids = _top(lexical_all, n)
    ids = np.unique(np.concatenate([dense_ids[dense_ids >= 0], lexical_ids]))
    dense = np.asarray(index.chunk_vectors[ids], dtype=np.float32) @ query.astype(np.float32)
    lexical = lexical_all[ids]
    fused = fuse(dense, lexical, settings)
    order = np.argsort(-fused, kind="stable")
    return [Hit(int(ids[i]), float(fused[i]), float(dense[i]), float(lexical[i])) for i in order]


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    positive = np.flatnonzero(scores > 0)
    if len(positive) <= n:
        return positive
    best = np.argpartition(-scores[positive], n - 1)[:n]
    return positive[best]


def fuse(dense: np.ndarray, lexical: np.ndarray, settings: Settings) -> np.ndarray:
    """One score per candidate from its dense and lexical scores (``settings.fusion``)."""
    w = settings.dense_weight
    if settings.fusion == "rrf":
        return w / (settings.rrf_k + _ranks(dense)) + (1 - w) / (settings.rrf_k + _ranks(lexical))
    return w * _minmax(dense) + (1 - w) * _minmax(lexical)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
    return ranks
