"""Reading in worker processes: the same documents, sentences and errors as reading in-process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qa import readers
from qa.errors import IngestError
from qa.index import Index
from qa.ingest import discover, read_bytes

from .conftest import build_fake, shared_path


@pytest.fixture
def corpus(corpus):
    """The shared small corpus plus a broken PDF and a few more text files."""
    folder = corpus
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a PDF")
    for i in range(6):
        (folder / f"part-{i}.txt").write_text(f"Part {i} says Dr. Lee met Gen. Smith. It was day {i}.\n" * 20)
    return folder


def tasks_of(folder):
    files, _ = discover([folder])
    return [(f, read_bytes(f, 10**8)) for f in files]


def same(a, b):
    if isinstance(a, Exception):
        return type(a) is type(b) and str(a) == str(b)
    return a == b


def test_small_input_is_read_here():
    assert readers.workers_for([]) == 0


def test_workers_return_what_reading_here_returns(corpus, monkeypatch):
    tasks = tasks_of(corpus)
    here = readers.prepare_all(tasks)
    monkeypatch.setattr(readers, "MIN_BYTES", 0)
    assert readers.workers_for(tasks) >= 2 or pytest.skip("one core: workers are never used here")
    ticks = []
    there = readers.prepare_all(tasks, lambda: ticks.append(1))
    assert len(ticks) == len(tasks)
    assert all(same(a, b) for a, b in zip(here, there, strict=True))
    broken = [r for (f, _), r in zip(tasks, there, strict=True) if f.source == "broken.pdf"]
    assert isinstance(broken[0], IngestError) and "broken.pdf: not a readable PDF" in str(broken[0])


def test_a_worker_that_dies_leaves_its_files_to_this_process(corpus, monkeypatch):
    tasks = tasks_of(corpus)
    started = []

    def dying_worker():
        started.append(1)
        return subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    monkeypatch.setattr(readers, "MIN_BYTES", 0)
    monkeypatch.setattr(readers, "_start", dying_worker)
    got = readers.prepare_all(tasks)
    assert started
    assert all(same(a, readers.prepare(*t)) for a, t in zip(got, tasks, strict=True))


def test_an_index_built_with_workers_equals_one_built_without(corpus, tmp_path, monkeypatch):
    build_fake(corpus, tmp_path / "here")
    monkeypatch.setattr(readers, "MIN_BYTES", 0)
    build_fake(corpus, tmp_path / "workers")
    a, b = Index.open(tmp_path / "here"), Index.open(tmp_path / "workers")
    manifests = [m.to_json() for m in (a.manifest, b.manifest)]
    for manifest in manifests:
        manifest.pop("built_at")
    assert json.dumps(manifests[0], sort_keys=True) == json.dumps(manifests[1], sort_keys=True)
    assert a.chunks(list(range(a.chunk_count))) == b.chunks(list(range(b.chunk_count)))
    assert "broken.pdf" in a.manifest.skipped


def test_workers_read_real_pdfs_as_this_process_does(monkeypatch):
    folder = shared_path("pdfs")
    files, _ = discover([folder])
    tasks = [(f, read_bytes(f, 10**8)) for f in files[:12]]
    here = [readers.prepare(*t) for t in tasks]
    monkeypatch.setattr(readers, "MIN_BYTES", 0)
    assert all(same(a, b) for a, b in zip(here, readers.prepare_all(tasks), strict=True))
