"""The Qdrant backend answers, cites and quotes exactly as the embedded index does, and updates incrementally.

In-process Qdrant (Qdrant Edge) covers ``--qdrant-path``; qdrant-client's local mode stands in
for a server (``--qdrant-url``), so the client code path runs without one. A real server is used
only when ``QA_TEST_QDRANT_URL`` names one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from qa import Assistant, IndexFolderError, QAError, Settings
from qa.backends import Backend, open_index
from qa.cli import main

from .conftest import HashEmbedder, build_fake

pytest.importorskip("qdrant_edge", reason="Qdrant is not installed: pip install 'qa[qdrant]'")

QUESTIONS = [
    "What does SOSA do?",
    "Who signed the memorandum of understanding?",
    "Where did the alliance meet?",
    "glide phase interceptor development",
    "What grew in 2024?",
    "zebra migration patterns",  # matches nothing well: abstains the same way
]


def _pair(corpus: Path, tmp_path: Path, backend: Backend) -> tuple[Assistant, Assistant, HashEmbedder]:
    emb = HashEmbedder()
    settings = Settings().but(model=emb.name, scorer="none")
    build_fake(corpus, tmp_path / "embedded", emb, settings)
    build_fake(corpus, tmp_path / "qdrant", emb, settings, backend=backend)
    return (
        Assistant(open_index(tmp_path / "embedded"), emb, settings),
        Assistant(open_index(tmp_path / "qdrant"), emb, settings),
        emb,
    )


def _same_answers(a: Assistant, b: Assistant) -> None:
    for question in QUESTIONS:
        assert b.ask(question) == a.ask(question), question
    assert b.ask_many(QUESTIONS) == a.ask_many(QUESTIONS)


def test_edge_backend_gives_the_embedded_answers_citations_and_quotes(corpus, tmp_path):
    """Same Answer objects (snippets, citations, scores), same cited passages, same quote matches."""
    embedded, qdrant, _ = _pair(corpus, tmp_path, Backend(path=str(tmp_path / "shard")))
    assert type(qdrant.index).__name__ == "QdrantIndex"
    assert not (qdrant.index.gen / "chunks.npy").exists()  # the vectors live in Qdrant, not the folder
    _same_answers(embedded, qdrant)
    top = embedded.ask("What does SOSA do?")
    cited = (top.snippets or top.related)[0].citation.id
    assert qdrant.cite(cited) == embedded.cite(cited)
    for quote in ("bring together industry and government", "bring togeter industri and goverment"):
        assert qdrant.find_quote(quote) == embedded.find_quote(quote)


def test_both_scores_of_every_candidate_match_the_embedded_index(corpus, tmp_path):
    """One request yields the candidates' dense and BM25 scores exactly as FAISS and bm25s give them."""
    from qa.lexical import terms

    embedded, qdrant, emb = _pair(corpus, tmp_path, Backend(path=str(tmp_path / "shard")))
    for question in QUESTIONS:
        vector = emb.embed([question])[0]
        ids, dense, lexical = qdrant.index.hybrid(vector, terms(question), 50)
        assert len(ids) == embedded.index.chunk_count  # a small corpus: every chunk is a candidate
        np.testing.assert_allclose(dense, np.asarray(embedded.index.chunk_vectors[ids]) @ vector, atol=1e-6)
        np.testing.assert_allclose(lexical, embedded.index.lexical.scores(terms(question))[ids], rtol=1e-5, atol=1e-6)


def test_incremental_update_upserts_new_files_and_deletes_gone_ones(corpus, tmp_path):
    """Unchanged files keep their points (nothing re-embedded); a removed file's points are deleted."""
    backend = Backend(path=str(tmp_path / "shard"))
    emb = HashEmbedder()
    settings = Settings().but(model=emb.name, scorer="none")
    build_fake(corpus, tmp_path / "qdrant", emb, settings, backend=backend)
    index = open_index(tmp_path / "qdrant")
    points = index.engine.count()
    assert points == index.chunk_count + index.manifest.counts["sentences"]
    (corpus / "extra.txt").write_text("Ferries cross the bay at dawn. The harbour master counts them twice.\n")
    report = build_fake(corpus, tmp_path / "qdrant", emb, settings, backend=backend)
    assert report.count("unchanged") == 2 and report.count("indexed") == 1
    assert report.embedded_chunks == 1
    assert index.engine.count() == points + 1 + 2
    (corpus / "notes.md").unlink()
    build_fake(corpus, tmp_path / "qdrant", emb, settings, backend=backend)
    after = open_index(tmp_path / "qdrant")
    assert after.engine.count() == after.chunk_count + after.manifest.counts["sentences"]
    build_fake(corpus, tmp_path / "embedded", emb, settings)
    _same_answers(Assistant(open_index(tmp_path / "embedded"), emb, settings), Assistant(after, emb, settings))
    assert any("Ferries cross the bay" in s.text for s in Assistant(after, emb, settings).ask("ferries").snippets)


@pytest.fixture
def local_server(monkeypatch):  # type: ignore[no-untyped-def]
    """qdrant-client's local mode behind every ``--qdrant-url``: the server code path, in memory."""
    qdrant_client = pytest.importorskip("qdrant_client")
    from qa.backends import qdrant

    client = qdrant_client.QdrantClient(location=":memory:")
    monkeypatch.setattr(qdrant._ClientEngine, "connect", classmethod(lambda cls, b: cls(client, b.collection)))
    return client


def test_server_backend_through_the_client_gives_the_embedded_answers(corpus, tmp_path, local_server):
    """``--qdrant-url``: the qdrant-client path (query_batch_points) answers as the embedded index does."""
    embedded, qdrant, _ = _pair(corpus, tmp_path, Backend(url="http://127.0.0.1:6333", collection="test"))
    assert local_server.collection_exists("test")
    _same_answers(embedded, qdrant)


def test_cli_index_ask_cite_and_reindex_keep_the_qdrant_backend(corpus, tmp_path, monkeypatch):
    """`qa index --qdrant-path`, then ask/cite/quote and a flagless `qa index` that keeps the backend."""
    monkeypatch.setattr("qa.assistant.embedder_for", lambda settings: HashEmbedder())
    runner = CliRunner()
    index_dir, shard = tmp_path / "idx", tmp_path / "shard"
    base = ["--index", str(index_dir)]
    done = runner.invoke(main, ["index", str(corpus), *base, "--model", HashEmbedder.name, "--qdrant-path", str(shard)])
    assert done.exit_code == 0, done.output
    answer = json.loads(runner.invoke(main, ["ask", "What does SOSA do?", *base, "--scorer", "none", "--json"]).stdout)
    cited = (answer["citation"] or answer["supporting"][0]["citation"])["id"]
    assert runner.invoke(main, ["cite", cited, *base]).exit_code == 0
    assert runner.invoke(main, ["quote", "bring together industry", *base]).exit_code == 0
    again = runner.invoke(main, ["index", *base, "--json"])
    assert again.exit_code == 0, again.output
    gen = index_dir / (index_dir / "CURRENT").read_text().strip()
    assert json.loads((gen / "manifest.json").read_text())["backend"]["path"] == str(shard.resolve())


def test_a_missing_extra_is_one_line_saying_what_to_install(corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "qdrant_edge", None)
    done = CliRunner().invoke(
        main, ["index", str(corpus), "--index", str(tmp_path / "i"), "--qdrant-path", str(tmp_path / "s")]
    )
    assert done.exit_code == 1
    assert done.output.strip().splitlines()[-1] == (
        "error: qdrant_edge is not installed; install it with: pip install 'qa[qdrant]'"
    )


def test_a_shard_open_in_another_process_is_a_clear_error(corpus, tmp_path):
    """Edge allows one process per folder; a second one is told why and what to do instead."""
    import subprocess

    build_fake(corpus, tmp_path / "q", backend=Backend(path=str(tmp_path / "shard")))
    code = (
        "import sys; sys.path.insert(0, 'src'); from qa.backends import open_index; from pathlib import Path\n"
        f"try:\n    open_index(Path({str(tmp_path / 'q')!r}))\nexcept Exception as e:\n    print(type(e).__name__, e)"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True).stdout
    assert out.startswith("IndexFolderError") and "another process has it open" in out and "\n" not in out.strip()


# --- a real Qdrant server: only where QA_TEST_QDRANT_URL names one ------------------------------------


class _Proxy:
    """A TCP relay on 127.0.0.1 to the server whose connections can be cut, as a failing replica's are."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def kill(self) -> None:
        self.cut = True
        for s in self.open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.mark.slow
def test_a_cut_connection_mid_batch_gives_answers_or_one_line_errors_and_nothing_half_written(corpus, tmp_path):
    url = os.environ.get("QA_TEST_QDRANT_URL")
    if not url:
        pytest.skip("QA_TEST_QDRANT_URL is not set: no real Qdrant server to cut connections to")
    from urllib.parse import urlparse

    parsed = urlparse(url)
    proxy = _Proxy(parsed.hostname or "127.0.0.1", parsed.port or 6333)
    collection = f"qa-test-{uuid.uuid4().hex[:8]}"
    backend = Backend(url=f"http://127.0.0.1:{proxy.port}", collection=collection)
    emb = HashEmbedder()
    settings = Settings().but(model=emb.name, scorer="none")
    build_fake(corpus, tmp_path / "q", emb, settings, backend=backend)
    assistant = Assistant(open_index(tmp_path / "q"), emb, settings)
    points = assistant.index.engine.count()
    outcomes: list[str] = []
    for n, question in enumerate(QUESTIONS * 4):
        if n == 7:
            proxy.kill()
        try:
            assistant.ask(question)
            outcomes.append("answer")
        except QAError as exc:
            assert isinstance(exc, IndexFolderError) and "\n" not in str(exc)
            outcomes.append("error")
    assert outcomes[:7] == ["answer"] * 7 and "error" in outcomes[7:]
    direct = open_index(tmp_path / "q", backend=Backend(url=url, collection=collection))
    assert direct.engine.count() == points  # nothing half-written or lost
    direct.engine.client.delete_collection(collection)
    shutil.rmtree(tmp_path / "q", ignore_errors=True)


def test_an_update_without_a_backend_named_keeps_the_one_the_index_has(corpus, tmp_path):
    """`qa serve` refreshing a stale index (Assistant.build with no backend) keeps it in Qdrant."""
    emb = HashEmbedder()
    settings = Settings().but(model=emb.name, scorer="none")
    shard = tmp_path / "shard"
    Assistant.build(corpus, tmp_path / "q", settings=settings, embedder=emb, backend=Backend(path=str(shard)))
    (corpus / "extra.txt").write_text("Ferries cross the bay at dawn.\n")
    report = Assistant.build(corpus, tmp_path / "q", settings=settings, embedder=emb)
    assert report.embedded_chunks == 1
    index = open_index(tmp_path / "q")
    assert type(index).__name__ == "QdrantIndex" and index.manifest.backend["path"] == str(shard.resolve())
