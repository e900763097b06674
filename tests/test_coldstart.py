"""Questions without torch: ONNX exports agree with the torch path; the CLI's chat, default index, progress."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qa as qa_package
from qa.cli import AddProgress

from .conftest import SEED_FILE

QA = str(Path(sys.executable).with_name("qa"))
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "gradio")
SEED = json.loads((Path(__file__).parent / "data" / "seed_questions.json").read_text())
QUESTIONS = [q["question"] for q in SEED["answerable"]] + [
    q if isinstance(q, str) else q["question"] for k in ("off_topic", "unanswerable_near_topic") for q in SEED[k]
]


def qa(*args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None, importtime: bool = False):  # type: ignore[no-untyped-def]
    """Run the installed ``qa`` entry point in a fresh process."""
    command = [sys.executable, "-X", "importtime", QA, *args] if importtime else [QA, *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=900)


def imported(stderr: str) -> set[str]:
    """Top-level packages a ``-X importtime`` run imported."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:")]
    return {line.split("|")[-1].strip().split(".")[0] for line in lines}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A corpus indexed by the real ``qa index --index DIR`` (which exports the ONNX models), and its environment."""
    home = tmp_path_factory.mktemp("coldstart")
    (home / "corpus").mkdir()
    shutil.copy(SEED_FILE, home / "corpus" / SEED_FILE.name)
    (home / "corpus" / "extra.txt").write_text("The harbour opened in 1901. Ferries leave every hour.\n")
    # The code under test, wherever the processes run (PYTHONPATH may be relative, as in `PYTHONPATH=src`).
    source = str(Path(qa_package.__file__).resolve().parents[1])
    path = [source, *(str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env = {**os.environ, "XDG_STATE_HOME": str(home / "state"), "PYTHONPATH": os.pathsep.join(path)}
    env.pop("QA_INDEX", None)
    env.pop("QA_NO_ONNX", None)
    result = qa("index", str(home / "corpus"), "--index", str(home / "built"), env=env, cwd=home)
    assert result.returncode == 0, result.stderr
    return home, env


@pytest.mark.slow
def test_index_exports_the_encoder_and_reader(built):
    home, _ = built
    names = {p.name for p in (home / "built" / "onnx").iterdir()}
    assert {"encoder.onnx", "encoder.json", "encoder.tokenizer.json", "reader.onnx", "reader.json"} <= names


@pytest.mark.slow
@pytest.mark.precision
def test_onnx_vectors_and_reader_logits_match_torch(built):
    """Question vectors within 1e-4 cosine of torch's at the index's precision; reader logits within 1e-3."""
    from qa.embed import SentenceTransformerEmbedder
    from qa.ort import OrtEncoder, OrtReader
    from qa.scorer import AnswerScorer

    home, _ = built
    folder = home / "built" / "onnx"
    fast = OrtEncoder(folder)
    torch_path = SentenceTransformerEmbedder(fast.name, precision=fast.precision)
    a, b = torch_path.embed(QUESTIONS), fast.embed(QUESTIONS)
    cosine = (a * b).sum(axis=1)
    if fast.precision == "int8":
        # int8 rounds each activation to one of 255 steps: a last-bit difference between ONNX Runtime's
        # float kernels and torch's moves a value across a step now and then, so the two int8 paths
        # agree as two int8 runs can (int8 itself keeps 0.95 to fp32), not to the last bit.
        assert float(cosine.min()) > 0.99 and float(cosine.mean()) > 0.999
    else:
        assert float(cosine.min()) > 1 - 1e-4
    single = np.stack([fast.embed([q])[0] for q in QUESTIONS[:10]])
    assert float((single * b[:10]).sum(axis=1).min()) > 1 - 1e-4  # alone or in a batch: the same vector

    sentences = [s.strip() for s in SEED_FILE.read_text().split(". ") if s.strip()][:12]
    # And a question longer than the reader's window (128 tokens): both paths cut it the same way.
    asked = [*QUESTIONS[:4], "What does the arrangement between the two defense departments provide? " * 25]
    questions = [q for q in asked for _ in sentences]
    texts = [f"us-japan | {s}" for _ in asked for s in sentences]
    torch_features, *torch_logits = AnswerScorer("reader")._read_torch(questions, texts)
    features, *logits = OrtReader(folder).read(questions, texts)
    for mine, theirs in zip(logits, torch_logits, strict=True):
        assert mine.shape == theirs.shape
        assert float(np.abs(mine - theirs).max()) < 1e-3
    assert (features["offset_mapping"].numpy() == torch_features["offset_mapping"].numpy()).all()
    assert all(features.sequence_ids(i) == torch_features.sequence_ids(i) for i in range(len(questions)))


@pytest.mark.slow
@pytest.mark.precision
def test_chat_gives_the_torch_paths_answers_without_importing_torch(built):
    """`qa chat` reads questions from a pipe; through ONNX it imports no torch and answers exactly as torch does.

    Every other sample question: answerable, off-topic and near-topic ones alike."""
    home, env = built
    asked = QUESTIONS[::2]
    stdin = "\n".join(asked) + "\n\n"
    fast = qa("chat", "--json", env=env, stdin=stdin, importtime=True)
    assert fast.returncode == 0, fast.stderr[-2000:]
    assert not imported(fast.stderr) & set(HEAVY)
    assert "note:" not in fast.stderr
    slow = qa("chat", "--json", env={**env, "QA_NO_ONNX": "1"}, stdin=stdin)
    assert slow.returncode == 0, slow.stderr
    mine = [json.loads(line) for line in fast.stdout.splitlines()]
    theirs = [json.loads(line) for line in slow.stdout.splitlines()]
    assert len(mine) == len(theirs) == len(asked)
    exact = json.loads((home / "built" / "onnx" / "encoder.json").read_text())["precision"] == "fp32"
    for a, b in zip(mine, theirs, strict=True):
        if exact:  # the same numbers: answer, phrase, citations, supporting passages, scores within 0.001
            assert close(a, b), (a, b)
        else:
            # int8 (see above): the same answer, phrase, citation and abstention, its confidence within
            # 0.01 (so a reason quoting it may differ in the last digit); the weak supporting passages
            # below it may come in another order.
            for answer in (a, b):
                del answer["supporting"]
                answer["reason"] = re.sub(r"\d", "#", answer["reason"] or "")
            assert close(a, b, 1e-2), (a, b)


def close(a: object, b: object, tolerance: float = 1e-3) -> bool:
    """Equal answers: the same texts, citations, phrase and abstention; numbers (scores) within ``tolerance``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tolerance
    return a == b


@pytest.mark.slow
def test_default_index_is_flag_then_env_then_last_built_then_index_folder(built, tmp_path):
    home, env = built
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The last one built (recorded by `qa index --index built`), from another folder.
    sources = qa("sources", "--json", env=env, cwd=elsewhere)
    assert sources.returncode == 0, sources.stderr
    assert {f["source"] for f in json.loads(sources.stdout)} == {SEED_FILE.name, "extra.txt"}
    # QA_INDEX beats it, and --index beats QA_INDEX.
    missing = qa("sources", env={**env, "QA_INDEX": str(tmp_path / "none")}, cwd=elsewhere)
    assert missing.returncode == 1 and str(tmp_path / "none") in missing.stderr
    flag = qa("sources", "--index", str(home / "built"), env={**env, "QA_INDEX": str(tmp_path / "none")}, cwd=elsewhere)
    assert flag.returncode == 0
    # Nothing recorded: index/ in the working folder.
    fresh = qa("sources", env={**env, "XDG_STATE_HOME": str(tmp_path / "state")}, cwd=elsewhere)
    assert fresh.returncode == 1 and "index: no index here yet" in fresh.stderr


@pytest.mark.slow
def test_indexing_other_folders_never_replaces_the_remembered_index_unasked(built, tmp_path):
    home, env = built
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("The lighthouse was built in 1870.\n")
    before = qa("sources", "--json", env=env, cwd=tmp_path)
    result = qa("index", str(other), env=env, cwd=tmp_path)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert str(home / "built") in message and "--index DIR" in message and str(other) in message
    after = qa("sources", "--json", env=env, cwd=tmp_path)
    assert json.loads(after.stdout) == json.loads(before.stdout)  # untouched
    # The folders it holds are indexed there as before, and --index names any folder.
    assert qa("index", str(home / "corpus"), env=env, cwd=tmp_path).returncode == 0
    named = qa("index", str(other), "--index", str(tmp_path / "own"), env=env, cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    back = qa("sources", "--json", "--index", str(home / "built"), env=env, cwd=tmp_path)
    assert json.loads(back.stdout) == json.loads(before.stdout)
    # The module's other tests expect the shared index to be the one built last.
    assert qa("index", str(home / "corpus"), "--index", str(home / "built"), env=env).returncode == 0


@pytest.mark.slow
def test_remove_loads_no_model(built, tmp_path):
    """`qa remove` rebuilds from what the index has: no torch, and the exports stay usable."""
    home, env = built
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(home / "corpus", corpus)
    shutil.copytree(home / "built", index)
    manifest = json.loads((index / (index / "CURRENT").read_text().strip() / "manifest.json").read_text())
    manifest["roots"] = [str(corpus.resolve())]
    for entry in manifest["files"].values():
        entry["path"] = str(corpus.resolve() / Path(entry["path"]).name)
    (index / (index / "CURRENT").read_text().strip() / "manifest.json").write_text(json.dumps(manifest))
    result = qa("remove", "extra.txt", "--index", str(index), env=env, importtime=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not imported(result.stderr) & set(HEAVY)
    assert (corpus / "extra.txt").exists()  # out of the index; the user's file stays on disk
    listed = qa("sources", "--json", "--index", str(index), env=env)
    assert [f["source"] for f in json.loads(listed.stdout)] == [SEED_FILE.name]


@pytest.mark.slow
def test_chat_ends_at_end_of_input_and_keeps_going_after_a_bad_question(built):
    """A blank line is skipped; a question refused (too long, bytes that are not UTF-8) gets its
    error as a JSON line of its own, and the chat goes on (the installed path: ONNX, no torch)."""
    home, env = built
    lines = ["   ", "why " * 600, "Who led\udcff?", "What does SOSA do?"]
    result = subprocess.run(
        [QA, "chat", "--index", str(home / "built"), "--json"],
        input="\n".join(lines).encode("utf-8", "surrogateescape") + b"\n",
        capture_output=True,
        env=env,
        timeout=300,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr
    answers = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [a["question"] for a in answers] == ["why " * 50, "Who led\\xff?", "What does SOSA do?"]
    assert "limit is 2,000" in answers[0]["error"] and "the byte \\xff at character 8" in answers[1]["error"]
    assert answers[2]["answer"] and "error" not in answers[2]
    assert "Traceback" not in stderr and stderr.count("error: ") == 2


def test_add_progress_shows_each_stage_from_the_start(monkeypatch):
    """`qa add` shows reading from the start (a long PDF parses before the first tick), then embedding."""
    made: list[list] = []

    class Bar:
        def __init__(self, total: int, what: str) -> None:
            self.total, self.n, self.closed = total, 0, False
            made.append([what, self])

        def update(self, n: int) -> None:
            self.n += n

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr("qa.build._bar", lambda total, what, unit, show: Bar(total, what))
    progress = AddProgress(1)
    assert [w for w, _ in made] == ["reading"] and made[0][1].total == 1
    progress("reading", 3, 3)
    progress("embedding", 256, 700)
    progress("embedding", 700, 700)
    progress.close()
    (_, reading), (_, embedding) = made
    assert (reading.total, reading.n, reading.closed) == (3, 3, True)
    assert (embedding.total, embedding.n, embedding.closed) == (700, 700, True)
