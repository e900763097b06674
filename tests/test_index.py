"""The index folder: incremental updates, atomic swaps, locks, model checks, damage."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from qa import Assistant, Settings
from qa.chunk import chunk_document
from qa.errors import IndexFolderError, IndexLockedError, IngestError
from qa.index import Index
from qa.settings import auto_precision
from qa.store import build_lock, current_generation

from .conftest import HashEmbedder, WordTokenizer, build_fake


def test_manifest_describes_the_index(corpus, tmp_path):
    report = build_fake(corpus, tmp_path / "index")
    manifest = Index.open(tmp_path / "index").manifest
    assert manifest.format == 1
    assert (manifest.model, manifest.dimension, manifest.max_tokens) == ("hash-embedder", 64, 254)
    assert manifest.precision == auto_precision()  # "auto" is recorded as what it was on this CPU
    assert manifest.settings() == Settings(model="hash-embedder", precision=auto_precision())
    assert set(manifest.files) == {"seed.txt", "notes.md"}
    assert all(len(f.sha256) == 64 for f in manifest.files.values())
    assert report.count("indexed") == 2


def test_the_embedding_batch_size_changes_the_calls_not_the_index(corpus, tmp_path):
    import numpy as np

    whole, small = HashEmbedder(), HashEmbedder()
    build_fake(corpus, tmp_path / "whole", whole)
    build_fake(corpus, tmp_path / "small", small, embed_batch=3)
    assert small.calls > whole.calls and small.texts == whole.texts
    a, b = (tmp_path / d / (tmp_path / d / "CURRENT").read_text().strip() for d in ("whole", "small"))
    for name in ("chunks.npy", "sentences.npy"):
        x, y = np.load(a / name), np.load(b / name)
        assert x.shape[0] > 3 and np.array_equal(x, y), name
    with pytest.raises(ValueError, match="embed_batch"):
        build_fake(corpus, tmp_path / "none", embed_batch=0)


def test_unchanged_files_are_not_embedded_again(corpus, tmp_path):
    first = build_fake(corpus, tmp_path / "index")
    embedder = HashEmbedder()
    again = build_fake(corpus, tmp_path / "index", embedder)
    assert first.embedded_chunks > 0
    assert again.embedded_chunks == 0 and embedder.calls == 0
    assert again.count("unchanged") == 2


def test_sentences_and_chunks_read_back_as_the_chunker_made_them(corpus, tmp_path):
    settings = Settings(chunk_tokens=60, chunk_overlap=1)
    build_fake(corpus, tmp_path / "index", settings=settings)
    (corpus / "extra.txt").write_text("Ferries cross the bay at dawn. The harbour master counts them twice.\n")
    build_fake(corpus, tmp_path / "index", settings=settings)  # seed.txt and notes.md are taken over
    index = Index.open(tmp_path / "index")
    try:
        assert len(index.document_rows()) == 3
        for r in index.document_rows():
            stored = index.document(r)
            made = chunk_document(stored.document, WordTokenizer(), 60, 1, settings.title_in_chunks)
            sentences = index.sentences(stored.sent_lo, stored.sent_hi)
            chunks = index.chunks(list(range(stored.chunk_lo, stored.chunk_hi)))
            assert [replace(s, row=None, doc_row=None) for s in sentences] == made[0]
            assert [replace(c, row=None, doc_row=None) for c in chunks] == made[1]
            assert [s.row for s in sentences] == list(range(stored.sent_lo, stored.sent_hi))
            assert [c.row for c in chunks] == list(range(stored.chunk_lo, stored.chunk_hi))
            assert {x.doc_row for x in [*sentences, *chunks]} == {r}
            for c in chunks:
                rows = index.sentence_rows(c)
                assert rows == range(stored.sent_lo + c.first, stored.sent_lo + c.last)
                assert [s.row for s in index.sentences(rows.start, rows.stop)] == list(rows)
        assert len(index.chunks(list(range(index.chunk_count)))) > 3  # seed.txt is several chunks
    finally:
        index.close()


def test_changed_and_deleted_files_are_updated(corpus, tmp_path):
    build_fake(corpus, tmp_path / "index")
    (corpus / "notes.md").write_text("# Notes\n\nA brand new sentence about submarines.\n")
    embedder = HashEmbedder()
    report = build_fake(corpus, tmp_path / "index", embedder)
    assert {f.source: f.status for f in report.files} == {"notes.md": "indexed", "seed.txt": "unchanged"}
    assert report.embedded_chunks == 1
    (corpus / "notes.md").unlink()
    report = build_fake(corpus, tmp_path / "index")
    assert set(Index.open(tmp_path / "index").manifest.files) == {"seed.txt"}
    assert [(f.source, f.status, f.warnings) for f in report.files if f.source == "notes.md"] == [
        ("notes.md", "removed", ("no longer in its folder",))
    ]


def test_building_from_other_folders_reports_what_leaves_the_index(corpus, tmp_path):
    """The index holds what the folders given hold: the files of a folder not given again leave it,
    and the report says so, file by file, naming the folder."""
    build_fake(corpus, tmp_path / "index")
    other = tmp_path / "other"
    other.mkdir()
    (other / "okapi.txt").write_text("Okapis live in the Ituri rainforest.")
    report = build_fake(other, tmp_path / "index")
    removed = {f.source: f.warnings[0] for f in report.files if f.status == "removed"}
    why = f"its folder {corpus} was not given this time; name it too to keep it in the index"
    assert removed == {"seed.txt": why, "notes.md": why}
    assert report.count("indexed") == 1 and set(Index.open(tmp_path / "index").manifest.files) == {"okapi.txt"}
    again = build_fake([corpus, other], tmp_path / "index")
    assert again.count("removed") == 0 and again.count("indexed") == 2


def test_reused_chunks_keep_the_same_citation_ids(corpus, tmp_path):
    build_fake(corpus, tmp_path / "index")
    before = Assistant.open(tmp_path / "index", embedder=HashEmbedder()).ask("Patriot missiles license")
    (corpus / "extra.txt").write_text("Something else entirely about weather in Oslo.")
    build_fake(corpus, tmp_path / "index")
    after = Assistant.open(tmp_path / "index", embedder=HashEmbedder())
    shown = before.snippets + before.related  # answered or not, the passages it shows
    assert shown
    for snippet in shown:
        assert after.cite(snippet.citation.id).text == snippet.text


def test_a_crash_mid_build_leaves_the_previous_index_working(corpus, tmp_path):
    build_fake(corpus, tmp_path / "index")
    gen = current_generation(tmp_path / "index")
    (corpus / "more.txt").write_text("New text. " * 50)
    with pytest.raises(RuntimeError, match="on purpose"):
        build_fake(corpus, tmp_path / "index", HashEmbedder(fail_after=0))
    assert current_generation(tmp_path / "index") == gen
    answer = Assistant.open(tmp_path / "index", embedder=HashEmbedder()).ask("Patriot missiles")
    assert any("Patriot" in s.text for s in answer.snippets + answer.related)  # answered or not, it searches
    assert build_fake(corpus, tmp_path / "index").count("indexed") == 1
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.startswith(".staging")]


def test_a_bad_file_is_reported_and_the_rest_indexed(corpus, tmp_path):
    (corpus / "empty.txt").write_text("")
    (corpus / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    report = build_fake(corpus, tmp_path / "index")
    skipped = {f.source: f.error for f in report.files if f.status == "skipped"}
    assert set(skipped) == {"empty.txt", "bad.pdf"}
    assert report.count("indexed") == 2
    assert set(Index.open(tmp_path / "index").manifest.skipped) == {"empty.txt", "bad.pdf"}


def test_a_corpus_with_nothing_readable_is_an_error_and_keeps_the_old_index(corpus, tmp_path):
    build_fake(corpus, tmp_path / "index")
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(IngestError, match="nothing could be indexed"):
        build_fake(empty, tmp_path / "index")
    assert Index.open(tmp_path / "index").manifest.files


def test_opening_with_another_model_is_a_clear_error(corpus, tmp_path):
    build_fake(corpus, tmp_path / "index")
    with pytest.raises(IndexFolderError, match="built with model 'hash-embedder', not 'other-model'"):
        Index.open(tmp_path / "index", model="other-model")


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexFolderError, match="qa index"):
        Index.open(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["manifest", "vectors", "current", "format"])
def test_a_damaged_index_says_how_to_rebuild(corpus, tmp_path, damage):
    build_fake(corpus, tmp_path / "index")
    gen = current_generation(tmp_path / "index")
    if damage == "manifest":
        (gen / "manifest.json").write_text("{not json")
    elif damage == "vectors":
        (gen / "chunks.npy").write_bytes(b"\x93NUMPY garbage")
    elif damage == "current":
        (tmp_path / "index" / "CURRENT").write_text("../../etc")
    else:
        manifest = json.loads((gen / "manifest.json").read_text())
        (gen / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(IndexFolderError, match="rebuild"):
        Index.open(tmp_path / "index")


def test_a_damaged_current_names_the_folders_to_rebuild_from_and_that_rebuild_works(corpus, tmp_path):
    """CURRENT no longer says which manifest is in use: the hint names the folders the newest
    generation was built from, since `qa index --rebuild` alone cannot find them."""
    import shlex

    build_fake(corpus, tmp_path / "index")
    (tmp_path / "index" / "CURRENT").write_text("garbage")
    with pytest.raises(IndexFolderError) as caught:
        Index.open(tmp_path / "index")
    command = str(caught.value).split("`")[1]
    assert command == f"qa index {shlex.quote(str(corpus))} --rebuild --index {shlex.quote(str(tmp_path / 'index'))}"
    build_fake(corpus, tmp_path / "index")  # what that command builds
    assert Index.open(tmp_path / "index", model=HashEmbedder().name).chunk_count > 0


def test_an_index_inside_its_corpus_folder_is_left_out_and_one_that_is_the_folder_refused(corpus, tmp_path):
    from qa.errors import InputError

    report = build_fake(corpus, corpus / "index")
    (corpus / "index" / "README.md").write_text("# What this folder is\n\nAn index.")
    again = build_fake(corpus, corpus / "index")
    assert {f.source for f in report.files} == {f.source for f in again.files} == {"seed.txt", "notes.md"}
    assert Index.open(corpus / "index", model=HashEmbedder().name).manifest.changed(corpus / "index") == []
    before = sorted(p.name for p in corpus.iterdir())
    with pytest.raises(InputError, match="is the index folder .*give the index another folder with --index"):
        build_fake(corpus, corpus)
    assert sorted(p.name for p in corpus.iterdir()) == before  # nothing written there


def test_a_second_builder_fails_clearly_while_the_first_holds_the_lock(corpus, tmp_path):
    with build_lock(tmp_path / "index"), pytest.raises(IndexLockedError, match="another build is writing"):
        build_fake(corpus, tmp_path / "index")


def test_a_corpus_whose_files_yield_no_text_is_an_error_not_a_crash(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "blank.txt").write_text("   \n\n  ")
    with pytest.raises(IngestError, match="nothing could be indexed"):
        build_fake(corpus, tmp_path / "index")


def test_sizes_are_said_with_the_digits_they_need():
    from qa.ingest import megabytes, over_limit

    assert [megabytes(n) for n in (52_400_000, 1_000_000, 1_040_000, 6942, 10, 1_570_000_000)] == [
        "52.4 MB",
        "1 MB",
        "1.04 MB",
        "0.0069 MB",
        "0.00001 MB",
        "1,570 MB",
    ]
    assert over_limit(52_400_000, 50e6) == "file is 52.4 MB, over the 50 MB limit"
    assert over_limit(50_000_001, 50e6) == "file is 50,000,001 bytes, over the 50,000,000-byte limit"


def test_a_newly_skipped_file_is_recorded_even_when_nothing_else_changed(corpus, tmp_path):
    build_fake(corpus, tmp_path / "index")
    (corpus / "empty.txt").write_text("")
    build_fake(corpus, tmp_path / "index")
    assert set(Index.open(tmp_path / "index").manifest.skipped) == {"empty.txt"}


def test_same_names_under_different_roots_are_all_indexed(tmp_path):
    roots = []
    for name in ("a", "b", "c"):
        root = tmp_path / name / "docs"
        root.mkdir(parents=True)
        (root / "README.md").write_text(f"# {name}\n\nNotes from folder {name} about otters.")
        roots.append(root)
    build_fake(roots, tmp_path / "index")
    assert sorted(Index.open(tmp_path / "index").manifest.files) == ["README.md", "README.md (2)", "README.md (3)"]


def test_add_reindexes_with_the_assistants_own_embedder(corpus, tmp_path):
    """add/remove keep the embedder the assistant was opened with instead of loading a model by name."""
    build_fake(corpus, tmp_path / "index")
    embedder = HashEmbedder()
    assistant = Assistant.open(tmp_path / "index", embedder=embedder)
    extra = tmp_path / "extra.txt"
    extra.write_text("Lighthouses in Brittany guide fishing boats home.")
    report = assistant.add([extra])
    assert report.count("indexed") == 1 and embedder.calls > 0
    assert "extra.txt" in assistant.index.manifest.files
