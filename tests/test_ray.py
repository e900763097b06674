"""Builds on a local Ray cluster (``--workers``) give the same index as a single-process build.

Ray binds every network interface, so each test runs again in a child pytest inside a
loopback-only network namespace (``unshare -rn``, then ``lo`` up); the parent only checks the
child passed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa import Assistant, Settings

from .conftest import CORPUS, ROOT, HashEmbedder, shared_path

pytest.importorskip("ray", reason="Ray is not installed: pip install 'qa[ray]'")
IN_NETNS = os.environ.get("QA_TEST_IN_NETNS") == "1"


def run_isolated(test_id: str, tmp_path: Path) -> None:
    """Run one test of this file in a loopback-only network namespace; fail with its output if it fails."""
    if IN_NETNS:
        return
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip to keep Ray on loopback")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user network namespaces are not allowed here ({probe.stderr.decode().strip()[:80]})")
    env = {**os.environ, "QA_TEST_IN_NETNS": "1", "QA_TEST_TMP": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    pytest_cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"tests/test_ray.py::{test_id}"]
    shell = "ip link set lo up && exec " + " ".join(f"'{a}'" for a in pytest_cmd)
    done = subprocess.run(["unshare", "-rn", "sh", "-c", shell], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _tmp(tmp_path: Path) -> Path:
    return Path(os.environ.get("QA_TEST_TMP", tmp_path))


def _same_index(a: Path, b: Path) -> None:
    """Same documents, sentences and chunks (ids and offsets), vectors within 1e-5."""
    gens = [p / (p / "CURRENT").read_text().strip() for p in (a, b)]
    for table in ("documents", "sentences", "chunks"):
        query = f"SELECT * FROM {table} ORDER BY 1"
        rows = [sqlite3.connect(g / "meta.sqlite").execute(query).fetchall() for g in gens]
        assert rows[0] == rows[1], table
    for name in ("chunks.npy", "sentences.npy"):
        x, y = (np.load(g / name).astype(np.float32) for g in gens)
        assert x.shape == y.shape and np.abs(x - y).max() <= 1e-5, name
    manifests = [json.loads((g / "manifest.json").read_text()) for g in gens]
    assert manifests[0]["files"].keys() == manifests[1]["files"].keys()
    assert manifests[0]["counts"] == manifests[1]["counts"]


@pytest.mark.slow
def test_two_worker_build_equals_single_process_build(tmp_path: Path) -> None:
    """Sample corpus + a 120-paragraph SQuAD slice, real model: same chunk ids, vectors, citations.

    Batches of 32 chunks give each of the two workers several to embed."""
    run_isolated("test_two_worker_build_equals_single_process_build", tmp_path)
    if not IN_NETNS:
        return
    from qa.evaluate import load_squad

    work = _tmp(tmp_path)
    corpus = work / "corpus"
    shutil.copytree(CORPUS, corpus)
    docs, _ = load_squad(shared_path("datasets", "squad", "dev-v1.1.json"))
    slice_dir = corpus / "squad"
    slice_dir.mkdir()
    for d in docs[:120]:
        (slice_dir / f"{d.doc_id}.txt").write_text(f"{d.title}\n\n{d.text}\n")
    from qa.cli import _runner

    settings = Settings()
    Assistant.build(corpus, work / "single", settings=settings, embed_batch=32)
    runner = _runner(settings, 2, None)
    try:
        Assistant.build(corpus, work / "ray", settings=settings, runner=runner, embed_batch=32)
    finally:
        runner.close()
    _same_index(work / "single", work / "ray")
    quick = Settings().but(scorer="none")  # retrieval and citations are what the build decides
    one, two = Assistant.open(work / "single", settings=quick), Assistant.open(work / "ray", settings=quick)
    for question in ("What does SOSA do?", "Which NFL team represented the AFC at Super Bowl 50?"):
        assert one.ask(question) == two.ask(question)


class DiesOnce(HashEmbedder):
    """A fake embedder whose process dies the first time any copy of it embeds (a marker file says so)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def embed(self, texts):  # type: ignore[no-untyped-def]
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().embed(texts)
        os.close(fd)
        os._exit(1)  # the worker process dies mid-build, as a killed machine would


def _dies_once(marker: str) -> DiesOnce:
    return DiesOnce(marker)


@pytest.mark.slow
def test_worker_killed_mid_build_is_retried_and_the_index_is_complete(tmp_path: Path) -> None:
    """An embedding worker that dies mid-build is replaced; the index equals a single-process build."""
    run_isolated("test_worker_killed_mid_build_is_retried_and_the_index_is_complete", tmp_path)
    if not IN_NETNS:
        return
    import functools

    import ray.cloudpickle

    from qa.raybuild import RayRunner

    from . import test_ray

    ray.cloudpickle.register_pickle_by_value(test_ray)
    work = _tmp(tmp_path)
    corpus = work / "corpus"
    corpus.mkdir()
    for i in range(3 * 16):  # one chunk per file: three embedding batches of 16
        text = " ".join(f"Sentence {j} of file {i} says w{i * j % 97}." for j in range(4))
        (corpus / f"f{i:04d}.txt").write_text(text)
    settings = Settings().but(model=HashEmbedder.name, scorer="none")
    from qa.build import build_index

    build_index(work / "single", [corpus], settings, HashEmbedder(), embed_batch=16)
    marker = str(work / "died")
    runner = RayRunner(functools.partial(_dies_once, marker), workers=2)
    try:
        build_index(work / "ray", [corpus], settings, HashEmbedder(), runner=runner, embed_batch=16)
    finally:
        runner.close()
    assert Path(marker).exists(), "no worker died: the test did not test a retry"
    _same_index(work / "single", work / "ray")
