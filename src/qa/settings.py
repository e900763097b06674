"""One frozen Settings object with the defaults, checked when it is made."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_PRECISION = "auto"  # see auto_precision
DEFAULT_BATCH_SIZE = 16  # texts the encoder reads in one pass
DEFAULT_INDEX = "index"  # the index folder when none is named
DEFAULT_CORPUS = "corpus"  # the folder a first build or `qa serve` indexes when none is named
FUSIONS = ("cc", "rrf")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
SCORERS = ("reader", "cheap", "none")
BATCH_INPUT_FORMATS = ("txt", "csv", "tsv", "jsonl")  # question files (`qa batch`)
BATCH_OUTPUT_FORMATS = ("jsonl", "csv", "md")  # answer files


CPU_FLAGS_ENV = "QA_CPU_FLAGS"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo, as ``QA_CPU_FLAGS`` amends them.

    ``QA_CPU_FLAGS`` is either a comma-separated list of flags to use instead of the CPU's, or a
    list of ``-flag`` entries to remove (and ``+flag`` to add): ``-avx512_vnni,-avx_vnni,-amx_int8``
    runs the path a CPU without VNNI takes. Removing flags is always safe; adding one the CPU lacks
    is not (its kernels then give wrong sums). ``make test`` runs the precision tests both ways.
    """
    return _amended(_proc_cpu_flags(), os.environ.get(CPU_FLAGS_ENV, ""))


def _amended(flags: frozenset[str], override: str) -> frozenset[str]:
    entries = [e.strip() for e in override.split(",") if e.strip()]
    if not entries:
        return flags
    if all(e[0] in "+-" for e in entries):
        removed = {e[1:] for e in entries if e[0] == "-"}
        return (flags - removed) | {e[1:] for e in entries if e[0] == "+"}
    if any(e[0] in "+-" for e in entries):
        raise ConfigError(
            f"{CPU_FLAGS_ENV} ({override!r}) mixes a list of flags with +/- changes; give one or the other"
        )
    return frozenset(entries)


@lru_cache(maxsize=1)
def _proc_cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    found = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return frozenset(found.group(1).split()) if found else frozenset()


def has_vnni() -> bool:
    """Whether the CPU sums 8-bit products in 32 bits (AVX512-VNNI, AVX-VNNI or AMX)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def auto_precision() -> str:
    """The encoder precision ``auto`` stands for on this CPU: int8 with VNNI, else bf16 where native, else fp32.

    On SQuAD dev int8 (with VNNI's 8-bit activations) was 2.1x fp32 at 0.16 point less snippet
    accuracy, and bf16 1.8x at none; bf16 without native support is slower than fp32, and int8
    without VNNI was not measured on such a CPU, hence fp32 there.
    """
    if has_vnni():
        return "int8"
    return "bf16" if native_bf16() else "fp32"


def resolve_precision(precision: str) -> str:
    """``precision`` with ``auto`` replaced by what it stands for on this CPU (``auto_precision``)."""
    return auto_precision() if precision == "auto" else precision


DENSE_INDEXES = ("auto", "flat", "hnsw")
# Exact search answers in under 30 ms end to end up to this many chunks (benchmarks/scale.py).
EXACT_UP_TO = 200_000
# Below this much input a build reads files in its own process: starting workers (about 0.3 s
# each) costs more than it saves.
READ_WORKERS_FROM_BYTES = 1_000_000


@dataclass(frozen=True)
class Settings:
    """Every tunable of indexing and answering.

    The retrieval and answer weights are fitted on SQuAD v1.1 dev articles 0-23
    (``qa eval --tune``); the README gives the figures.
    """

    model: str = DEFAULT_MODEL
    # auto (int8 where the CPU has VNNI, else bf16 where native, else fp32), fp32, bf16 or int8:
    # see README, Performance. "auto" is resolved where the model is loaded; an index records
    # the precision its encoder ran at.
    precision: str = DEFAULT_PRECISION
    # Chunking: token limits are measured with the model's own tokenizer.
    chunk_tokens: int = 200
    chunk_overlap: int = 32
    title_in_chunks: bool = True
    max_file_mb: float = 50.0
    # Follow links that lead outside the indexed folders (by default only links inside them are).
    follow_links: bool = False
    # Dense index: "auto" keeps exact search up to ``exact_up_to`` chunks, then HNSW over 8-bit vectors.
    dense_index: str = "auto"
    exact_up_to: int = EXACT_UP_TO
    # Files are parsed in worker processes once a build has this many bytes to read.
    read_workers_from_bytes: int = READ_WORKERS_FROM_BYTES
    # HNSW search breadth, and how many times ``candidates`` it fetches to keep the best by exact
    # score: recall@50 against exact search 0.976 at 1M chunks, 2.8 ms (benchmarks/scale.py).
    hnsw_ef_search: int = 1024
    hnsw_oversample: int = 2
    batch_size: int = DEFAULT_BATCH_SIZE
    # Retrieval: candidates from each retriever, then fusion.
    candidates: int = 50
    fusion: str = "cc"
    dense_weight: float = 0.5
    rrf_k: int = 60
    # Sentence choice: weights of the sentence's own similarity, its lexical overlap and its chunk.
    sentence_dense_weight: float = 0.4
    sentence_lexical_weight: float = 0.3
    sentence_chunk_weight: float = 0.3
    # How much the best sentence lifts its chunk when passages are ranked.
    rerank_weight: float = 0.9
    chunks_to_read: int = 8
    # Abstain when the best similarity is below this (scorer "none" only: the learned scorers
    # carry their own calibrated threshold).
    abstain_below: float = 0.27
    snippets: int = 3
    # The answer scorer: "reader" (cheap head, then the reader on the best few), "cheap" (the
    # head alone) or "none" (similarity and word overlap, as before the scorer).
    scorer: str = "reader"
    scorer_candidates: int = 24

    def __post_init__(self) -> None:
        positive = (
            "chunk_tokens",
            "batch_size",
            "candidates",
            "rrf_k",
            "chunks_to_read",
            "snippets",
            "hnsw_ef_search",
            "hnsw_oversample",
            "exact_up_to",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', ' ')} ({getattr(self, name)}) must be at least 1")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError(
                f"chunk overlap ({self.chunk_overlap}) must be from 0 to below chunk size ({self.chunk_tokens})"
            )
        if self.read_workers_from_bytes < 0:
            raise ConfigError(f"read workers from bytes ({self.read_workers_from_bytes}) must not be negative")
        if self.max_file_mb <= 0:
            raise ConfigError(f"max file size ({self.max_file_mb} MB) must be positive")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.dense_index not in DENSE_INDEXES:
            raise ConfigError(f"dense index {self.dense_index!r} is not one of {', '.join(DENSE_INDEXES)}")
        if self.scorer not in SCORERS:
            raise ConfigError(f"scorer {self.scorer!r} is not one of {', '.join(SCORERS)}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion {self.fusion!r} is not one of {', '.join(FUSIONS)}")
        for name in (
            "dense_weight",
            "sentence_dense_weight",
            "sentence_lexical_weight",
            "sentence_chunk_weight",
            "rerank_weight",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name.replace('_', ' ')} ({getattr(self, name)}) must be between 0 and 1")
        if not -1.0 <= self.abstain_below <= 1.0:
            raise ConfigError(f"abstain threshold ({self.abstain_below}) must be between -1 and 1")

    def but(self, **changes: Any) -> Settings:
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)

    def index_fields(self) -> dict[str, Any]:
        """The settings that shape the index; a change to any of them means a full rebuild."""
        from .lexical import SCHEME

        return {
            "precision": self.precision,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
            "title_in_chunks": self.title_in_chunks,
            "lexical": SCHEME,
        }

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
