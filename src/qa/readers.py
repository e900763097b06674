"""Parsing and sentence splitting on every core: the part of a build that is pure Python.

Reading files (pypdf) and splitting sentences (pysbd) hold the GIL, so in one process they use
one core while the others wait for the encoder. For a large enough corpus they run in worker
processes instead, one per core. Workers are plain subprocesses running ``serve_stdin``, fed
over pipes, not ``multiprocessing``, which would import the caller's main script again in each
worker. Whatever a worker fails to return is read in this process, so a build never fails for
want of a worker, and the result is the same either way.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from .chunk import split_sentences
from .ingest import SourceFile, parse_document
from .settings import READ_WORKERS_FROM_BYTES
from .types import Document

MAX_WORKERS = 4

Task = tuple[SourceFile | Document, bytes]
# A read document with its warnings and sentence spans, or the exception that stopped it.
Prepared = tuple[Document, list[str], list[tuple[int, int]]] | Exception


def prepare(item: SourceFile | Document, data: bytes) -> Prepared:
    """Parse one file (or take a ready Document) and split its sentences."""
    try:
        document, warnings = (item, []) if isinstance(item, Document) else parse_document(item, data)
        return document, warnings, split_sentences(document)
    except Exception as exc:  # reported per file by the build, like any read error
        return exc


def workers_for(tasks: Sequence[Task], min_bytes: int = READ_WORKERS_FROM_BYTES) -> int:
    """How many worker processes ``tasks`` are worth: 0 to read them here (under ``min_bytes`` of input)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    size = sum(len(data) if data else len(getattr(item, "text", "")) for item, data in tasks)
    if cores < 2 or size < min_bytes or len(tasks) < 2:
        return 0
    return min(cores, MAX_WORKERS, len(tasks))


Starter = Callable[[], "subprocess.Popen[bytes] | None"]


def prepare_all(
    tasks: Sequence[Task],
    on_done: Callable[[], None] | None = None,
    min_bytes: int = READ_WORKERS_FROM_BYTES,
    start: Starter | None = None,
) -> list[Prepared]:
    """``prepare`` of every task, in order, in worker processes when that pays.

    ``start`` starts one worker (``start_worker`` by default); None from it means no worker.
    """
    results: list[Prepared | None] = [None] * len(tasks)
    count = workers_for(tasks, min_bytes)
    if count:
        _in_workers(tasks, results, count, on_done, start or start_worker)
    for i, result in enumerate(results):
        if result is None:  # small input, or a worker that could not finish
            results[i] = prepare(*tasks[i])
            if on_done is not None:
                on_done()
    return results  # type: ignore[return-value]


def _in_workers(
    tasks: Sequence[Task],
    results: list[Prepared | None],
    count: int,
    on_done: Callable[[], None] | None,
    start: Starter,
) -> None:
    # Largest first, so one big PDF does not finish last on its own.
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in sorted(range(len(tasks)), key=lambda i: -len(tasks[i][1] or getattr(tasks[i][0], "text", ""))):
        todo.put(i)
    done: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    procs: list[subprocess.Popen[bytes]] = []

    def serve(proc: subprocess.Popen[bytes]) -> None:
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    pickle.dump(tasks[i], proc.stdin)  # type: ignore[arg-type]
                    proc.stdin.flush()  # type: ignore[union-attr]
                    results[i] = pickle.load(proc.stdout)  # type: ignore[arg-type]
                except Exception:  # the worker died or the pipe broke: this process reads what is left
                    return
                done.put(i)
        finally:
            done.put(None)

    try:
        for _ in range(count):
            proc = start()
            if proc is not None:
                procs.append(proc)
        threads = [threading.Thread(target=serve, args=(p,), daemon=True) for p in procs]
        for thread in threads:
            thread.start()
        running = len(threads)
        while running:
            if done.get() is None:
                running -= 1
            elif on_done is not None:
                on_done()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def start_worker() -> subprocess.Popen[bytes] | None:
    """A worker process running ``serve_stdin`` with this package importable, or None if none starts."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    try:
        return subprocess.Popen(
            [sys.executable, "-c", "from qa.readers import serve_stdin; serve_stdin()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
    except OSError:
        return None


def serve_stdin() -> None:
    """Worker loop: a pickled task in on stdin, its pickled ``prepare`` result out on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the channel
    source = sys.stdin.buffer
    while True:
        try:
            task = pickle.load(source)
        except EOFError:
            return
        result = prepare(*task)
        try:
            payload = pickle.dumps(result)
        except Exception:  # an exception that does not pickle is sent as its text
            payload = pickle.dumps(RuntimeError(f"{type(result).__name__}: {result}"[:300]))
        channel.write(payload)
        channel.flush()
