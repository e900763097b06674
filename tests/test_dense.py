"""The dense index: exact or HNSW chosen by size, recorded, overridable, and as good as exact."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import faiss
import numpy as np
import pytest

import qa.dense
from qa import Assistant, Settings
from qa.dense import FLAT_MAX, dense_description, dense_kind, make_dense
from qa.index import Index
from qa.retrieve import dense_candidates

from .conftest import ROOT, SEED_FILE, build_fake

QUESTIONS = json.loads((ROOT / "tests/data/seed_questions.json").read_text(encoding="utf-8"))


def clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around a few hundred centres: neighbourhoods like sentence embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, 64)).astype(np.float32)
    x = centres[rng.integers(0, 300, n)] + 0.5 * rng.standard_normal((n, 64)).astype(np.float32)
    faiss.normalize_L2(x)
    return x


def test_exact_search_up_to_the_threshold_then_hnsw_unless_told():
    assert dense_kind("auto", FLAT_MAX) == "flat"
    assert dense_kind("auto", FLAT_MAX + 1) == "hnsw"
    assert dense_kind("flat", 10 * FLAT_MAX) == "flat"
    assert dense_kind("hnsw", 10) == "hnsw"
    assert dense_kind("auto", 6, exact_up_to=5) == "hnsw" and dense_kind("auto", 5, exact_up_to=5) == "flat"
    assert Settings().exact_up_to == FLAT_MAX
    described = dense_description("auto", FLAT_MAX + 1)
    assert described["type"] == "hnsw" and described["requested"] == "auto"
    assert described["exact_up_to"] == FLAT_MAX and described["m"] == qa.dense.HNSW_M


def test_the_manifest_records_the_choice_and_the_index_is_that_kind(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_FILE, corpus / "seed.txt")
    build_fake(corpus, tmp_path / "auto", settings=Settings(exact_up_to=5))  # the seed corpus has more chunks
    auto = Index.open(tmp_path / "auto")
    assert auto.manifest.dense["type"] == "hnsw" and auto.manifest.dense["requested"] == "auto"
    assert isinstance(auto.dense, faiss.IndexHNSWSQ)
    build_fake(corpus, tmp_path / "flat", settings=Settings(dense_index="flat", exact_up_to=5))
    flat = Index.open(tmp_path / "flat")
    assert flat.manifest.dense == {"type": "flat", "requested": "flat", "exact_up_to": 5}
    assert isinstance(flat.dense, faiss.IndexFlatIP)


def test_hnsw_candidates_match_exact_search():
    base, queries = clustered(20_000, 0), clustered(200, 1)
    view = SimpleNamespace(dense=make_dense("hnsw", base), chunk_vectors=base, chunk_count=len(base))
    exact = make_dense("flat", base)
    _, truth = exact.search(queries, 50)
    got = dense_candidates(view, queries, Settings())  # type: ignore[arg-type]
    recall = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(got, truth, strict=True)])
    assert recall >= 0.95
    # Best first by exact score, as the fusion expects.
    scores = np.einsum("qd,qkd->qk", queries, base[got])
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_hnsw_pads_when_asked_for_more_than_it_holds():
    base = clustered(30, 2)
    view = SimpleNamespace(dense=make_dense("hnsw", base), chunk_vectors=base, chunk_count=len(base))
    got = dense_candidates(view, base[:2], Settings(candidates=50))  # type: ignore[arg-type]
    assert got.shape == (2, 30) and sorted(got[0]) == list(range(30))


def test_one_question_searches_on_one_thread_and_puts_the_count_back():
    base = clustered(1000, 3)
    view = SimpleNamespace(dense=make_dense("flat", base), chunk_vectors=base, chunk_count=len(base))
    before = faiss.omp_get_max_threads()
    dense_candidates(view, base[:1], Settings())  # type: ignore[arg-type]
    assert faiss.omp_get_max_threads() == before


@pytest.fixture(scope="module")
def seed_corpus(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)
    return corpus


@pytest.mark.slow
def test_hnsw_index_answers_the_sample_questions_as_exact_search_does(seed_corpus, seed_index, embedder, tmp_path):
    Assistant.build(seed_corpus, tmp_path / "hnsw", embedder=embedder, settings=Settings(dense_index="hnsw"))
    # Retrieval is what differs; the answer scorer reads whatever it is given (so it is left out).
    quick = Settings(scorer="none")
    approximate = Assistant.open(tmp_path / "hnsw", embedder=embedder, settings=quick)
    exact = Assistant.open(seed_index, embedder=embedder, settings=quick)
    assert approximate.manifest.dense["type"] == "hnsw"
    questions = [q["question"] for q in QUESTIONS["answerable"]]
    same = sum(
        (a.abstained, (a.snippets or a.related)[0].text) == (b.abstained, (b.snippets or b.related)[0].text)
        for a, b in zip(approximate.ask_many(questions), exact.ask_many(questions), strict=True)
    )
    assert same == len(questions)


def test_a_batch_finds_what_its_questions_find_one_by_one():
    base, queries = clustered(5000, 4), clustered(40, 5)  # 40 questions: searched as one matrix product
    view = SimpleNamespace(dense=make_dense("flat", base), chunk_vectors=base, chunk_count=len(base))
    batch = dense_candidates(view, queries, Settings())  # type: ignore[arg-type]
    for q, got in zip(queries, batch, strict=True):
        alone = dense_candidates(view, q.reshape(1, -1), Settings())[0]  # type: ignore[arg-type]
        assert len(set(got) & set(alone)) >= 49
    # Batches go through BLAS, single questions do not (it is four times slower for one).
    assert faiss.cvar.distance_compute_blas_threshold <= len(queries) * base.shape[1]
    assert faiss.cvar.distance_compute_blas_threshold > base.shape[1]
