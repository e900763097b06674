"""Reading in worker processes: the same documents, sentences and errors as reading in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qa import Settings, readers
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


def test_workers_are_started_only_for_enough_input_in_several_files(corpus):
    tasks = tasks_of(corpus)
    size = sum(len(data) for _, data in tasks)
    cores = len(os.sched_getaffinity(0))
    assert readers.workers_for([], min_bytes=0) == 0
    assert readers.workers_for(tasks, min_bytes=size + 1) == 0
    assert readers.workers_for(tasks[:1], min_bytes=0) == 0  # one file: nothing to share out
    expected = min(cores, readers.MAX_WORKERS, len(tasks)) if cores >= 2 else 0
    assert readers.workers_for(tasks, min_bytes=size) == expected
    assert readers.workers_for(tasks[:3], min_bytes=0) == min(expected, 3)


def test_workers_return_what_reading_here_returns(corpus):
    tasks = tasks_of(corpus)
    here = readers.prepare_all(tasks)
    assert readers.workers_for(tasks, min_bytes=0) >= 2 or pytest.skip("one core: workers are never used here")
    ticks = []
    started = []

    def counted_start():  # type: ignore[no-untyped-def]
        started.append(1)
        return readers.start_worker()

    there = readers.prepare_all(tasks, lambda: ticks.append(1), min_bytes=0, start=counted_start)
    assert len(started) >= 2
    assert len(ticks) == len(tasks)
    assert all(same(a, b) for a, b in zip(here, there, strict=True))
    broken = [r for (f, _), r in zip(tasks, there, strict=True) if f.source == "broken.pdf"]
    assert isinstance(broken[0], IngestError) and "broken.pdf: not a readable PDF" in str(broken[0])


def test_a_worker_that_dies_leaves_its_files_to_this_process(corpus):
    tasks = tasks_of(corpus)
    started = []

    def dying_worker():
        started.append(1)
        return subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    got = readers.prepare_all(tasks, min_bytes=0, start=dying_worker)
    assert started
    assert all(same(a, readers.prepare(*t)) for a, t in zip(got, tasks, strict=True))


def test_an_index_built_with_workers_equals_one_built_without(corpus, tmp_path):
    build_fake(corpus, tmp_path / "here")
    build_fake(corpus, tmp_path / "workers", settings=Settings(read_workers_from_bytes=0))
    a, b = Index.open(tmp_path / "here"), Index.open(tmp_path / "workers")
    manifests = [m.to_json() for m in (a.manifest, b.manifest)]
    for manifest in manifests:
        manifest.pop("built_at")
    assert json.dumps(manifests[0], sort_keys=True) == json.dumps(manifests[1], sort_keys=True)
    assert a.chunks(list(range(a.chunk_count))) == b.chunks(list(range(b.chunk_count)))
    assert "broken.pdf" in a.manifest.skipped


def test_workers_read_real_pdfs_as_this_process_does():
    folder = shared_path("pdfs")
    files, _ = discover([folder])
    tasks = [(f, read_bytes(f, 10**8)) for f in files[:12]]
    here = [readers.prepare(*t) for t in tasks]
    assert all(same(a, b) for a, b in zip(here, readers.prepare_all(tasks, min_bytes=0), strict=True))
