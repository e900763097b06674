"""The FAISS policy: which dense index a build makes, how it is described, and making it."""

from __future__ import annotations

from typing import Any

import numpy as np

from .settings import EXACT_UP_TO

FLAT_MAX = EXACT_UP_TO  # the default of Settings.exact_up_to
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80


def dense_kind(requested: str, count: int, exact_up_to: int = FLAT_MAX) -> str:
    """The FAISS index for ``count`` chunks: exact while it is fast enough, then HNSW."""
    if requested != "auto":
        return requested
    return "flat" if count <= exact_up_to else "hnsw"


def dense_description(requested: str, count: int, exact_up_to: int = FLAT_MAX) -> dict[str, Any]:
    """What the manifest records of the dense index: its kind, and why it was chosen."""
    kind = dense_kind(requested, count, exact_up_to)
    described: dict[str, Any] = {"type": kind, "requested": requested, "exact_up_to": exact_up_to}
    if kind == "hnsw":
        described.update(m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, storage="8-bit scalar quantised")
    return described


def make_dense(kind: str, vectors: np.ndarray) -> Any:
    """A FAISS index of ``kind`` over unit vectors (inner product = cosine)."""
    import faiss

    dim = vectors.shape[1]
    if kind == "hnsw":
        # 8-bit scalar quantisation keeps a million 384-d vectors in ~0.4 GB; search re-scores the
        # candidates exactly from chunks.npy (retrieve.dense_candidates).
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        if len(vectors):
            index.train(vectors)
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    return index
