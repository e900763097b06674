"""An index keeps how it was built through every update: add, remove, reindex, rebuild and serve."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa import Assistant, Settings
from qa.cli import main
from qa.errors import IndexFolderError, InputError
from qa.index import Index
from qa.settings import auto_precision
from qa.store import current_generation
from qa.web import ready_assistant

from .conftest import ROOT, SEED_FILE, HashEmbedder, build_fake

# Not what "auto" stands for here, so a path that forgets the recorded precision shows.
OTHER_PRECISION = "fp32" if auto_precision() != "fp32" else "bf16"


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


def docs_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mydocs"
    folder.mkdir()
    shutil.copy(SEED_FILE, folder / "seed.txt")
    (folder / "report.txt").write_text("The quarterly report says the okapi budget doubled in 2023.\n")
    return folder


def built_with(index_dir: Path) -> tuple:
    m = Index.open(index_dir).manifest
    return (m.model, m.precision, m.chunk_tokens, m.chunk_overlap, m.max_file_mb, m.dense_index, m.dense["type"])


@pytest.mark.slow
def test_every_update_path_keeps_the_settings_and_folders_the_index_was_built_with(tmp_path, monkeypatch):
    """qa index/add/remove/--rebuild, Assistant.open/reindex and serve --update all reuse the manifest."""
    docs = docs_folder(tmp_path)
    index = tmp_path / "index"
    flags = ["--chunk-tokens", "64", "--chunk-overlap", "8", "--precision", OTHER_PRECISION]
    flags += ["--max-file-mb", "0.005", "--dense-index", "hnsw"]  # seed.txt (7 KB) is over 0.005 MB
    result = run("index", docs, "--index", index, *flags)
    assert result.exit_code == 0, result.output
    expected = ("all-MiniLM-L6-v2", OTHER_PRECISION, 64, 8, 0.005, "hnsw", "hnsw")
    assert built_with(index) == expected
    assert "seed.txt" in Index.open(index).manifest.skipped

    # A folder of its own corpus/ must not leak into any update of this index.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "corpus").mkdir(parents=True)
    (elsewhere / "corpus" / "intruder.txt").write_text("This file must never be indexed into the other index.")
    monkeypatch.chdir(elsewhere)

    assistant = Assistant.open(index)
    assert (assistant.settings.chunk_tokens, assistant.settings.precision) == (64, OTHER_PRECISION)
    assert assistant.embedder.precision == OTHER_PRECISION

    note = tmp_path / "note.txt"
    note.write_text("Okapis live in the Ituri rainforest. They eat leaves.\n")
    added = run("add", note, "--index", index, "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["embedded_chunks"] == 1  # only the new file; the rest reused
    assert built_with(index) == expected
    (tmp_path / "noise.txt").write_bytes(bytes(range(256)) * 8)
    refused = run("add", tmp_path / "noise.txt", "--index", index)
    assert refused.exit_code == 1 and "noise.txt: looks like a binary file" in refused.output
    assert refused.output.endswith("error: 1 of the 1 files given could not be added (see above)\n")

    removed = run("remove", "report.txt", "--index", index)
    assert removed.exit_code == 0, removed.output
    assert removed.output == f"removed report.txt from the index; the file stays at {docs / 'report.txt'}\n"
    assert built_with(index) == expected

    rebuilt = run("index", "--rebuild", "--index", index, "--json")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert built_with(index) == expected
    manifest = Index.open(index).manifest
    assert manifest.roots == (str(docs),)
    assert set(manifest.files) == {"note.txt"} and "report.txt" not in manifest.files  # still removed

    Assistant.open(index).reindex()
    assert built_with(index) == expected

    (docs / "later.txt").write_text("Added after the build: giraffes are okapi relatives.\n")
    ready_assistant(index, None, update=True)
    assert built_with(index) == expected
    assert set(Index.open(index).manifest.files) == {"note.txt", "later.txt"}


def test_serve_from_a_folder_with_its_own_corpus_never_rebuilds_the_index(corpus, tmp_path, monkeypatch):
    """`qa serve --index X` run beside another corpus/ serves X as built, and reports X as stale."""
    index = tmp_path / "index"
    build_fake(corpus, index)
    gen = current_generation(index)
    here = tmp_path / "here"
    (here / "corpus").mkdir(parents=True)
    (here / "corpus" / "one.txt").write_text("A single unrelated document.")
    monkeypatch.chdir(here)
    (corpus / "notes.md").write_text("# Notes\n\nChanged since the build.\n")
    said: list[str] = []
    assistant = ready_assistant(index, Path("corpus"), say=said.append)
    assert current_generation(index) == gen
    assert set(assistant.manifest.files) == {"seed.txt", "notes.md"}
    assert any("1 file(s) changed" in s and "notes.md" in s for s in said)
    assert any("--corpus corpus is not indexed into it" in s for s in said)


def test_removing_a_source_keeps_the_users_file_and_says_so(tmp_path):
    docs = docs_folder(tmp_path)
    build_fake(docs, tmp_path / "index")
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    removal = assistant.remove("report.txt")
    assert (docs / "report.txt").read_text().startswith("The quarterly report")
    assert not removal.deleted and removal.path == str(docs / "report.txt")
    assert set(assistant.manifest.files) == {"seed.txt"}
    assert assistant.ask("okapi budget quarterly report").abstained or all(
        s.citation.source != "report.txt" for s in assistant.ask("okapi budget quarterly report").snippets
    )
    build_fake(docs, tmp_path / "index")  # a later update keeps it out
    assert set(Index.open(tmp_path / "index").manifest.files) == {"seed.txt"}
    assistant.add([docs / "report.txt"])  # adding it back indexes it where it is, without a copy
    assert set(assistant.manifest.files) == {"seed.txt", "report.txt"}
    assert sorted(p.name for p in docs.iterdir()) == ["report.txt", "seed.txt"]


def test_removing_a_linked_duplicate_never_deletes_the_file_it_points_to(tmp_path):
    docs = docs_folder(tmp_path)
    (docs / "zz-link.txt").symlink_to(docs / "report.txt")
    build_fake(docs, tmp_path / "index")
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    assert "zz-link.txt" in assistant.manifest.skipped  # same content as report.txt
    removal = assistant.remove("zz-link.txt", delete_file=True)
    assert removal.deleted and not (docs / "zz-link.txt").is_symlink()
    assert (docs / "report.txt").read_text().startswith("The quarterly report")
    assert "report.txt" in assistant.manifest.files


def test_removing_the_last_source_leaves_a_valid_empty_index_that_abstains(tmp_path):
    docs = tmp_path / "mydocs"
    docs.mkdir()
    (docs / "only.txt").write_text("Owls hunt at night in the forest.")
    build_fake(docs, tmp_path / "index")
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    assistant.remove("only.txt")
    assert (docs / "only.txt").exists()
    assert assistant.manifest.files == {} and assistant.index.chunk_count == 0
    answer = Assistant.open(tmp_path / "index", embedder=HashEmbedder()).ask("Where do owls hunt?")
    assert answer.abstained and not answer.snippets
    assistant.add([docs / "only.txt"])
    assert not assistant.ask("Where do owls hunt at night?").abstained


def test_a_file_added_by_copy_is_deleted_on_remove_and_only_that(tmp_path):
    docs = docs_folder(tmp_path)
    build_fake(docs, tmp_path / "index")
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    outside = tmp_path / "upload.txt"
    outside.write_text("Pangolins are covered in scales made of keratin.")
    assistant.add([outside])
    copied = docs / "upload.txt"
    assert copied.exists() and assistant.manifest.is_managed(str(copied))
    removal = assistant.remove("upload.txt")
    assert removal.deleted and not copied.exists() and outside.exists()


def test_adding_a_file_already_in_the_corpus_indexes_it_in_place(corpus, tmp_path):
    build_fake(corpus, tmp_path / "index")
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    report = assistant.add([corpus / "seed.txt"])
    assert {f.source: f.status for f in report.files} == {"seed.txt": "unchanged", "notes.md": "unchanged"}
    assert sorted(p.name for p in corpus.iterdir()) == ["notes.md", "seed.txt"]


def test_add_keeps_the_recorded_file_size_limit_and_dense_index(corpus, tmp_path):
    settings = Settings(max_file_mb=0.005, dense_index="hnsw")  # seed.txt (7 KB) is over the limit
    build_fake(corpus, tmp_path / "index", settings=settings)
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    extra = tmp_path / "extra.txt"
    extra.write_text("Tapirs are shy.")
    assistant.add([extra])
    manifest = assistant.manifest
    assert (manifest.max_file_mb, manifest.dense_index, manifest.dense["type"]) == (0.005, "hnsw", "hnsw")
    assert "seed.txt" in manifest.skipped and set(manifest.files) == {"notes.md", "extra.txt"}


def test_settings_keep_auto_and_the_encoder_resolves_it():
    from qa.embed import SentenceTransformerEmbedder, embedder_for

    assert Settings().precision == "auto"
    assert SentenceTransformerEmbedder(precision="auto").precision == auto_precision()
    # One set of defaults: the encoder made with none is the one the default settings make.
    default, made = SentenceTransformerEmbedder(), embedder_for(Settings())
    assert (default.name, default.batch_size, default.precision) == (made.name, made.batch_size, made.precision)
    assert made.precision == auto_precision()


def test_a_build_that_runs_out_of_disk_keeps_the_old_index_and_says_so_in_one_line(corpus, tmp_path):
    index = tmp_path / "index"
    build_fake(corpus, index)
    gen = current_generation(index)
    (corpus / "more.txt").write_text("Words about tides and harbours. " * 4000)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    before = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, hard))
    try:
        with pytest.raises(IndexFolderError) as info:
            build_fake(corpus, index)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, before)
    message = str(info.value)
    assert "\n" not in message and "writing the new index failed (" in message
    assert "the previous index is unchanged" in message
    assert current_generation(index) == gen and not list(index.glob(".staging-*"))
    answer = Assistant.open(index, embedder=HashEmbedder()).ask("Patriot missiles")
    assert any("Patriot" in s.text for s in answer.snippets + answer.related)  # answered or not, it searches


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_index_folder_is_a_one_line_error(corpus, tmp_path):
    index = tmp_path / "index"
    build_fake(corpus, index)
    (corpus / "more.txt").write_text("Something new about herons.")
    (index / ".lock").unlink()
    index.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "qa", "add", str(corpus / "more.txt"), "--index", str(index)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        index.chmod(0o755)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "taking the build lock failed (Permission denied)" in result.stderr


ADDER = r"""
import sys, time
from pathlib import Path
from tests.conftest import build_fake
index, corpus = Path(sys.argv[1]), Path(sys.argv[2])
for n in range(3):
    new = corpus / f"new-{n}.txt"
    new.write_text(f"Zebrafinch{n} nests are woven from grass number {n}.")
    build_fake(corpus, index)
    print("added", n, flush=True)
    time.sleep(0.5)
    new.unlink()
    build_fake(corpus, index)
    print("removed", n, flush=True)
    time.sleep(0.5)
"""


def test_a_reader_follows_updates_from_another_process_without_a_failed_request(corpus, tmp_path):
    """Questions on fresh threads while another process adds and removes: none fails, new files show up."""
    index = tmp_path / "index"
    build_fake(corpus, index)
    assistant = Assistant.open(index, embedder=HashEmbedder())
    assistant.settings = assistant.settings.but(scorer="none")  # the index lifecycle, not the scorer, is tested
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    other = subprocess.Popen(
        [sys.executable, "-c", ADDER, str(index), str(corpus)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    failures: list[str] = []
    seen: dict[str, float] = {}
    answered = 0

    def ask(question: str) -> None:
        nonlocal answered
        try:
            with assistant.reading():  # as the UI's /chat does: the answer, then its first passage
                answer = assistant.ask(question)
                assistant.cite(answer.snippets[0].citation.id) if answer.snippets else None
            for s in answer.snippets:
                if s.citation.source.startswith("new-"):
                    seen.setdefault(s.citation.source, time.monotonic())
            answered += 1
        except Exception as exc:  # every kind counts as a failed request
            failures.append(f"{type(exc).__name__}: {exc}")

    deadline = time.monotonic() + 180
    while other.poll() is None and time.monotonic() < deadline:
        threads = [threading.Thread(target=ask, args=(q,)) for q in ("Zebrafinch0 nests", "Zebrafinch1 nests grass")]
        threads += [
            threading.Thread(target=ask, args=("Zebrafinch2 woven nests",)),
            threading.Thread(target=ask, args=("Patriot missiles",)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err[-2000:]
    assert failures == []
    assert answered > 20
    assert set(seen) == {"new-0.txt", "new-1.txt", "new-2.txt"}
    assert len(list(index.glob("gen-*"))) <= 2  # generations nobody reads any more were removed


def test_a_copy_edited_since_it_was_added_is_kept_on_remove(tmp_path):
    """The edits are the user's work: `remove` takes the copy out of the index and leaves it on disk."""
    docs = docs_folder(tmp_path)
    build_fake(docs, tmp_path / "index")
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    for name in ("edited.txt", "reindexed.txt"):
        (tmp_path / name).write_text(f"Pangolins are covered in scales made of keratin ({name}).")
        assistant.add([tmp_path / name])
        (docs / name).write_text(f"Pangolins are covered in scales ({name}). My own notes follow.")
    assistant.reindex()  # reindexed.txt's edit is indexed: it is no longer a copy qa made
    assert not assistant.manifest.is_managed(str(docs / "reindexed.txt"))
    assert not assistant.manifest.is_managed(str(docs / "edited.txt"))  # indexed again too, edited
    removal = assistant.remove("reindexed.txt")
    assert not removal.deleted and (docs / "reindexed.txt").read_text().endswith("My own notes follow.")
    # Edited after the last build: the recorded content differs from the file's.
    (tmp_path / "late.txt").write_text("Tapirs are shy.")
    assistant.add([tmp_path / "late.txt"])
    (docs / "late.txt").write_text("Tapirs are shy. Edited by hand.")
    removal = assistant.remove("late.txt")
    assert not removal.deleted and removal.edited and "it changed since qa copied it in" in removal.line()
    assert (docs / "late.txt").read_text() == "Tapirs are shy. Edited by hand."
    assert {"reindexed.txt", "late.txt"}.isdisjoint(assistant.manifest.files)


def test_an_added_file_that_cannot_be_read_leaves_no_copy_behind(tmp_path):
    docs = docs_folder(tmp_path)
    build_fake(docs, tmp_path / "index")
    before = sorted(p.name for p in docs.iterdir())
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "fine.txt").write_text("Tapirs are shy animals of the forest.")
    report = assistant.add([tmp_path / "binary.txt", tmp_path / "fine.txt"])
    status = {f.source: (f.status, f.error) for f in report.files}
    assert status["fine.txt"] == ("indexed", "")
    assert status["binary.txt"][0] == "skipped" and status["binary.txt"][1].endswith("its copy was removed again)")
    assert sorted(p.name for p in docs.iterdir()) == sorted([*before, "fine.txt"])
    assert "binary.txt" not in assistant.manifest.skipped and (tmp_path / "binary.txt").exists()
    assert assistant.manifest.managed == (str(docs / "fine.txt"),)
    # One already in the corpus folder is the user's: it stays, and the report says it was not added.
    (docs / "inside.txt").write_bytes(bytes(range(256)) * 8)
    status = {f.source: (f.status, f.error) for f in assistant.add([docs / "inside.txt"]).files}
    assert status["inside.txt"][0] == "skipped" and status["inside.txt"][1].endswith("; not added")
    assert (docs / "inside.txt").exists() and status["fine.txt"] == ("unchanged", "")
    # One the build passes over without a word (a hidden file) is not added either, and says why.
    (docs / ".hidden.txt").write_text("Hidden notes about tapirs.")
    status = {f.source: (f.status, f.error) for f in assistant.add([docs / ".hidden.txt"]).files}
    assert status[".hidden.txt"] == (
        "skipped",
        ".hidden.txt: qa does not index hidden files or files inside the index folder; not added",
    )


def test_a_source_can_be_removed_by_its_file_s_path_and_the_file_stays(tmp_path):
    docs = docs_folder(tmp_path)
    build_fake(docs, tmp_path / "index")
    assistant = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    name = sorted(assistant.manifest.files)[0]
    path = docs / name
    before = path.read_bytes()
    outside = tmp_path / name  # the same name outside the corpus is not that source
    outside.write_text("Not indexed.")
    with pytest.raises(InputError, match="is not a source of this index"):
        assistant.remove(str(outside))
    removal = assistant.remove(str(path))
    assert removal.source == name and not removal.deleted and name not in assistant.manifest.files
    assert path.read_bytes() == before
