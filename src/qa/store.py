"""The index folder on disk: its layout, the build lock, generations and the build's transaction.

Layout of ``INDEX/``::

    CURRENT            name of the generation in use (replaced atomically at the end of a build)
    gen-<n>/           one complete index
      manifest.json    how it was built (qa.manifest): model, settings, roots, per-file hashes
      meta.sqlite      documents (with their text), sentences and chunks, all as offsets
      chunks.npy       chunk vectors (float32), row i = chunk id i = FAISS id i
      sentences.npy    sentence vectors (float16), pooled from the chunk's token vectors
      dense.faiss      the FAISS index over chunks.npy
      bm25/            the bm25s index over the same chunks (absent when there are no chunks)
    .lock              held by the build that is writing

A build runs as one transaction (``transaction``): lock, write a staging folder, publish it by
pointing CURRENT at it, clean up. A build that dies or fails leaves CURRENT pointing at the
previous, complete generation. Readers hold a shared lock on the manifest of the generation
they read, and clean-up removes only generations that nobody holds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import IndexFolderError, IndexLockedError

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
META = "meta.sqlite"
CHUNK_VECTORS = "chunks.npy"
SENTENCE_VECTORS = "sentences.npy"
DENSE = "dense.faiss"
LEXICAL = "bm25"
LOCK = ".lock"


def rebuild_hint(index_dir: Path) -> str:
    """What to run to rebuild ``index_dir``: from the folders its manifest names, or, when CURRENT
    cannot say which manifest that is, the folders the newest readable generation names."""
    try:
        gen = current_generation(index_dir, hint=False)
        if gen is not None and json.loads((gen / MANIFEST).read_text(encoding="utf-8")).get("roots"):
            return f"rebuild it with `qa index --rebuild --index {index_dir}`"
    except (IndexFolderError, OSError, ValueError, AttributeError):
        pass
    roots: list[str] = []
    for gen in sorted(index_dir.glob("gen-*"), reverse=True):
        try:
            roots = [str(r) for r in json.loads((gen / MANIFEST).read_text(encoding="utf-8"))["roots"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if roots:
            break
    folders = " ".join(shlex.quote(r) for r in roots) if roots else "FOLDER..."
    return f"rebuild it with `qa index {folders} --rebuild --index {shlex.quote(str(index_dir))}`"


def _oserror(index_dir: Path, exc: Exception, doing: str) -> IndexFolderError:
    """A one-line error for a failed write: what failed, why, that nothing changed, what to do."""
    code = getattr(exc, "errno", None)
    reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())[:160]
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or not isinstance(exc, OSError):
        what = "check that the disk has space and run the build again"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        what = "make the folder writable, or use --index to build another"
    else:
        what = "fix that and run the build again"
    return IndexFolderError(f"{index_dir}: {doing} failed ({reason}); the previous index is unchanged; {what}")


@contextmanager
def build_lock(index_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the index folder's build lock, or raise IndexLockedError naming the holder. A build that
    fails in a folder this lock made leaves no folder behind (nothing but the lock was in it)."""
    made = [p for p in (index_dir, *index_dir.parents) if not p.exists()]
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        handle = open(index_dir / LOCK, "a+")  # noqa: SIM115 (closed below, after the yield)
    except OSError as exc:
        raise _oserror(index_dir, exc, "taking the build lock") from None
    with handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise IndexLockedError(
                        f"{index_dir}: another build is writing this index ({holder}); wait for it to finish"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        failed = True
        try:
            yield
            failed = False
        finally:
            handle.seek(0)
            handle.truncate()
            if failed and made:
                with contextlib.suppress(OSError):
                    if [p.name for p in index_dir.iterdir()] == [LOCK]:
                        (index_dir / LOCK).unlink()
                        for folder in made:  # deepest first
                            folder.rmdir()
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_generation(index_dir: Path, hint: bool = True) -> Path | None:
    """The generation folder CURRENT names, or None when there is no index yet."""
    try:
        name = (index_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        fix = f"; {rebuild_hint(index_dir)}" if hint else ""
        raise IndexFolderError(f"{index_dir}: cannot read {CURRENT} ({exc.strerror}){fix}") from None
    except UnicodeDecodeError:
        name = "(not text)"
    if not name.startswith("gen-") or "/" in name:
        fix = f"; {rebuild_hint(index_dir)}" if hint else ""
        raise IndexFolderError(f"{index_dir}/{CURRENT} is damaged (names {name[:40]!r}){fix}")
    return index_dir / name


def current_stamp(index_dir: Path) -> tuple[int, int] | None:
    """A cheap fingerprint of CURRENT (inode, mtime): it changes whenever a build publishes."""
    try:
        st = os.stat(index_dir / CURRENT)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def hold(gen: Path) -> IO[bytes]:
    """A shared lock on ``gen`` for as long as the returned handle is open: clean-up leaves it alone.

    Raises FileNotFoundError when the generation is gone (a build replaced and removed it).
    """
    handle = open(gen / MANIFEST, "rb")  # noqa: SIM115 (the caller closes it)
    try:
        fcntl.flock(handle, fcntl.LOCK_SH)
        if not (gen / MANIFEST).exists():  # removed between open and lock
            raise FileNotFoundError(errno.ENOENT, "generation removed", str(gen))
    except BaseException:
        handle.close()
        raise
    return handle


class Transaction:
    """One build's write: ``publish(write)`` fills a staging folder and switches CURRENT to it."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.published: Path | None = None
        self._staging: Path | None = None

    def publish(self, write: Callable[[Path], None]) -> Path:
        """Run ``write(staging)``, then make the staging folder the generation in use, atomically."""
        try:
            self._staging = self.index_dir / f".staging-{os.getpid()}-{time.time_ns()}"
            self._staging.mkdir(parents=True)
            write(self._staging)
            self.published = publish(self.index_dir, self._staging)
        except (OSError, sqlite3.Error) as exc:  # a full disk, a quota, a file size limit, a read-only folder
            raise _oserror(self.index_dir, exc, "writing the new index") from None
        except RuntimeError as exc:
            if "write" not in str(exc).lower():  # FAISS reports a failed write as a RuntimeError
                raise
            raise _oserror(self.index_dir, exc, "writing the new index") from None
        self._staging = None
        return self.published

    def abandon(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


@contextmanager
def transaction(index_dir: Path, wait_s: float = 0.0) -> Iterator[Transaction]:
    """Lock ``index_dir``, let the body publish at most one generation, clean up whatever happens.

    On any failure (an exception, a kill) the staging folder is dropped and CURRENT still names
    the previous generation; OSErrors of writing become one-line IndexFolderErrors.
    """
    with build_lock(index_dir, wait_s):
        txn = Transaction(index_dir)
        try:
            yield txn
        finally:
            txn.abandon()
            if txn.published is not None:
                clean_up(index_dir)


def publish(index_dir: Path, staging: Path) -> Path:
    """Move a finished staging folder into place and point CURRENT at it, atomically."""
    gen = index_dir / f"gen-{time.time_ns()}"
    _fsync_tree(staging)
    os.rename(staging, gen)
    pointer = index_dir / f".{CURRENT}.{os.getpid()}"
    pointer.write_text(gen.name + "\n")
    with open(pointer, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer, index_dir / CURRENT)
    _fsync_dir(index_dir)
    return gen


def clean_up(index_dir: Path) -> None:
    """Remove staging folders and the old generations no reader holds (call under the build lock)."""
    try:
        current = current_generation(index_dir)
    except IndexFolderError:
        return
    for gen in index_dir.glob("gen-*"):
        if gen == current or not gen.is_dir():
            continue
        try:
            handle = open(gen / MANIFEST, "rb")  # noqa: SIM115
        except FileNotFoundError:
            shutil.rmtree(gen, ignore_errors=True)
            continue
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a reader still answers from it; a later clean-up removes it
            trash = index_dir / f".trash-{gen.name}"
            os.rename(gen, trash)  # readers that look for it from now on find it gone
        shutil.rmtree(trash, ignore_errors=True)
    for entry in [*index_dir.glob(".staging-*"), *index_dir.glob(".trash-*")]:
        shutil.rmtree(entry, ignore_errors=True)  # left by a build that died: no build but ours is running


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
