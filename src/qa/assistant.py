"""The facade: open or build an index, then ask, cite and find quotes. Plain function calls."""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import cite as citing
from .backends import Backend
from .build import EMBED_BATCH, Progress, build_index
from .embed import DeferredEmbedder, Embedder, ModelEmbedder, SentenceTransformerEmbedder, embedder_for
from .errors import IndexFolderError, InputError, QAError
from .extract import Scored, answer, judged_answer, score_sentences
from .index import Index, LiveIndex
from .ingest import SUPPORTED, file_hash, over_limit
from .lexical import terms
from .manifest import Manifest, read_manifest
from .quote import find_quote
from .raybuild import RayRunner
from .retrieve import Hit, dense_candidates, search
from .scorer import AnswerScorer, candidates, cues, features, is_english_script
from .settings import DEFAULT_CORPUS, DEFAULT_INDEX, Settings
from .types import NOT_ADDED, Answer, BuildReport, FileReport, Passage, QuoteMatch

MAX_QUESTION_CHARS = 2000
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair, alone: not a character
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def undecodable_shown(text: str) -> str:
    """``text`` with each lone surrogate written out: a byte that was not UTF-8 (surrogateescape's
    U+DC80-U+DCFF) as ``\\xNN``, any other as ``U+XXXX``."""

    def one(m: re.Match[str]) -> str:
        code = ord(m.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"

    return _SURROGATE.sub(one, text)


def clean_question(question: str) -> str:
    """The question with control characters dropped and white space folded; InputError if unusable."""
    if not isinstance(question, str):
        raise InputError(f"a question must be text, not {type(question).__name__}")
    bad = _SURROGATE.search(question)
    if bad:
        # What a terminal or pipe gives for bytes that are not UTF-8 (Python's "surrogateescape"):
        # not text the tokenizer can read.
        shown = undecodable_shown(bad.group())
        what = f"the byte {shown}" if shown.startswith("\\x") else shown
        raise InputError(
            f"the question holds {what} at character {bad.start() + 1}, which is not UTF-8 text; "
            "type or save it as UTF-8"
        )
    text = " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", question)).split())
    if not text:
        raise InputError("the question is empty; type a question")
    if len(text) > MAX_QUESTION_CHARS:
        raise InputError(
            f"the question is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS:,}: ask a shorter one"
        )
    return text


def safe_name(name: str) -> str:
    """A file name that is safe to store: no folders, no hidden files, no odd characters."""
    base = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    stem, dot, ext = base.rpartition(".")
    if not dot or f".{ext.lower()}" not in SUPPORTED:
        raise InputError(f"{name}: unsupported type; upload .txt, .md or .pdf files")
    stem = re.sub(r"\s+", " ", stem)  # a line break or tab in a name becomes a space
    stem = re.sub(r"[^\w ().,\-]", "_", stem).strip(" ._-") or "upload"  # no leading dash: not an option
    return f"{stem[:120]}.{ext.lower()}"


NOT_ENGLISH = "the question does not look like English; qa reads and answers English questions only"
JUDGE_GROUP = 16  # questions whose candidates the reader reads in one pass


@lru_cache(maxsize=4)
def load_scorer(kind: str, onnx_dir: Path | None = None) -> AnswerScorer | None:
    """The scorer of ``kind``, reading through the ONNX export in ``onnx_dir`` (an index folder) when given."""
    if kind == "none":
        return None
    if onnx_dir is not None and kind == "reader":
        from .ort import open_reader
        from .scorer import MODEL_DIR

        return AnswerScorer(kind, onnx=open_reader(onnx_dir, MODEL_DIR))
    return AnswerScorer(kind)


def export_models(index_dir: Path, embedder: object, wait_s: float = 0.0) -> None:
    """Export the question encoder and the answer reader to ONNX beside the index, where missing or stale."""
    if not isinstance(embedder, (SentenceTransformerEmbedder, DeferredEmbedder)):
        return  # a stand-in embedder (tests): nothing to export
    from .export import ensure_exports
    from .ort import export_folder
    from .store import build_lock

    with build_lock(index_dir, wait_s):
        ensure_exports(export_folder(index_dir), embedder, embedder.name, embedder.precision)


def _unchanged(path: str, sha256: str) -> bool:
    """Whether the file at ``path`` still holds what was indexed (its sha256); a missing file counts as unchanged."""
    try:
        return not sha256 or file_hash(Path(path).read_bytes()) == sha256
    except FileNotFoundError:
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Removal:
    """What `remove` did: the source left the index, and its file was deleted or left in place."""

    source: str
    path: str
    deleted: bool
    report: BuildReport
    edited: bool = False  # a copy `add` made, kept because it changed since it was indexed

    def line(self) -> str:
        if self.deleted:
            return f"removed {self.source} from the index and deleted {self.path}"
        why = " (it changed since qa copied it in, so it is yours now)" if self.edited else ""
        return f"removed {self.source} from the index; the file stays at {self.path}{why}"


class Assistant:
    """Answers questions from an index with cited verbatim snippets.

    The index is followed live: when another process (or ``add``/``remove`` here) publishes a
    new generation, the next question is answered from it; questions already running finish on
    the generation they started with.
    """

    def __init__(self, index: Index, embedder: Embedder, settings: Settings) -> None:
        self._live = LiveIndex(index)
        self.embedder = embedder
        self.settings = settings
        self._changing = threading.Lock()  # one add/remove at a time; questions go on meanwhile
        self.reader_onnx: Path | None = None  # the index folder whose reader export reads, if any
        self.notes: list[str] = []  # what the user should know once, such as a slow path taken

    @property
    def index(self) -> Index:
        """The newest generation of the index."""
        return self._live.current()

    @contextmanager
    def reading(self) -> Iterator[Index]:
        """The newest generation, kept open for the block even if a build replaces it meanwhile."""
        with self._live.reading() as index:
            yield index

    @classmethod
    def open(
        cls,
        index_dir: str | Path = DEFAULT_INDEX,
        *,
        model: str | None = None,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        onnx: bool | None = None,
    ) -> Assistant:
        """Open a built index. ``model``, when given, must be the model the index was built with.

        The model, precision and chunk settings are the ones the index was built with (its
        manifest); ``settings`` gives the rest (retrieval and answer tunables).
        With ``onnx`` (the default when no ``embedder`` is given) questions are encoded and read
        through the index's ONNX exports, without torch; where an export is missing or stale the
        torch path answers and ``notes`` says so.
        """
        index = Index.open(Path(index_dir), model)
        settings = index.manifest.settings(settings)
        if not (embedder is None if onnx is None else onnx):
            return cls(index, embedder or embedder_for(settings), settings)
        from .ort import export_folder, open_encoder, reader_meta_ok
        from .scorer import MODEL_DIR

        fast, why = (embedder, None) if embedder else open_encoder(index.dir, settings.model, settings.precision)
        assistant = cls(index, fast or embedder_for(settings), settings)
        hint = f"`qa index --index {index.dir}` exports it"
        if why is not None:
            assistant.notes.append(f"{why}: questions go through torch, which takes seconds to load; {hint}")
        if settings.scorer == "reader" and not reader_meta_ok(export_folder(index.dir), MODEL_DIR):
            assistant.notes.append(
                f"{index.dir} has no ONNX export of the current answer reader: it reads through torch, "
                f"which takes seconds to load; {hint}"
            )
        else:
            assistant.reader_onnx = index.dir
        return assistant

    @staticmethod
    def build(
        corpus: str | Path | Sequence[str | Path] | None = None,
        index_dir: str | Path = DEFAULT_INDEX,
        *,
        settings: Settings | None = None,
        embedder: ModelEmbedder | None = None,
        rebuild: bool = False,
        progress: bool = False,
        on_progress: Progress | None = None,
        wait_s: float = 0.0,
        backend: Backend | None | str = "same",
        runner: RayRunner | None = None,
        embed_batch: int = EMBED_BATCH,
    ) -> BuildReport:
        """Index the files under ``corpus`` into ``index_dir``, reusing what has not changed.

        ``corpus`` defaults to the folders the index was built from (else ``corpus/``) and
        ``settings`` to the ones it was built with (else the defaults); files removed from it
        with ``remove`` stay out.
        ``backend``: keep vectors and search in Qdrant (``qa.backends.Backend``) or in the folder
        (None); by default where the index in ``index_dir`` keeps them (the folder for a new one).
        ``runner``: parse and embed on a Ray cluster (``qa.raybuild.RayRunner``).
        ``embed_batch``: chunks embedded together (on Ray, one worker's task).
        Then the question encoder and the answer reader are exported to ONNX beside the index where
        missing or stale (``qa.export``), so that questions need no torch.
        """
        index_dir = Path(index_dir)
        try:
            manifest = read_manifest(index_dir)
        except IndexFolderError as exc:
            if corpus is None:
                if "`qa index --rebuild" not in str(exc):
                    raise  # its hint already names the folders to rebuild from
                raise IndexFolderError(
                    f"{str(exc).split('; rebuild it with')[0]}; its manifest is unreadable, so name the folders: "
                    f"`qa index FOLDER... --rebuild --index {index_dir}`"
                ) from None
            manifest = None
        if corpus is None:
            roots = [Path(r) for r in manifest.roots] if manifest is not None and manifest.roots else []
            roots = roots or [Path(DEFAULT_CORPUS)]
        elif isinstance(corpus, (str, Path)):
            roots = [Path(corpus)]
        else:
            roots = [Path(p) for p in corpus]
        settings = settings or (manifest.settings() if manifest is not None else Settings())
        if isinstance(backend, str):
            backend = Backend.from_manifest(dict(manifest.backend)) if manifest and manifest.backend else None
        embedder = embedder or embedder_for(settings)
        report = build_index(
            index_dir,
            roots,
            settings,
            embedder,
            rebuild=rebuild,
            progress=progress,
            on_progress=on_progress,
            wait_s=wait_s,
            backend=backend,
            runner=runner,
            embed_batch=embed_batch,
        )
        export_models(index_dir, embedder, wait_s)
        return report

    @staticmethod
    def build_settings(index_dir: str | Path = DEFAULT_INDEX, **changes: object) -> Settings:
        """What a build of ``index_dir`` uses: ``changes`` that are not None, else what it was built with."""
        try:
            manifest = read_manifest(Path(index_dir))
        except QAError:
            manifest = None  # damaged: rebuilt with the defaults
        base = manifest.settings() if manifest is not None else Settings()
        return base.but(**{k: v for k, v in changes.items() if v is not None})

    @property
    def manifest(self) -> Manifest:
        """How the index in use was built (model, settings, folders, files)."""
        return self.index.manifest

    def changed(self) -> list[str]:
        """Files under the index's folders added, changed or removed since it was built."""
        return self.manifest.changed(self.index.dir)

    def ask(self, question: str, k: int | None = None) -> Answer:
        """The best verbatim answer to ``question`` with ``k`` snippets in all, or an abstention."""
        text = clean_question(question)
        vectors = self.embedder.embed([text])
        with self.reading() as index:
            return self._answers(index, [text], vectors, k, [None])[0]

    def ask_many(self, questions: Sequence[str], k: int | None = None) -> list[Answer]:
        """Answers to many questions; the questions are embedded, searched and judged in batches."""
        texts = [clean_question(q) for q in questions]
        if not texts:
            return []
        vectors = self.embedder.embed(texts)
        with self.reading() as index:  # one generation for the whole batch
            dense = dense_candidates(index, vectors, self.settings)
            return self._answers(index, texts, vectors, k, list(dense))

    @property
    def scorer(self) -> AnswerScorer | None:
        """The answer scorer the settings name (loaded once per process), or None for "none"."""
        return load_scorer(self.settings.scorer, self.reader_onnx)

    def retrieve(
        self, question: str, vector: np.ndarray, dense_ids: np.ndarray | None = None, index: Index | None = None
    ) -> tuple[list[Hit], list[Scored]]:
        """Ranked chunks and scored sentences for a cleaned question and its vector."""
        if index is None:
            with self.reading() as current:
                return self.retrieve(question, vector, dense_ids, current)
        words = terms(question)
        hits = search(index, vector, words, self.settings, dense_ids)
        return score_sentences(index, hits, vector, words, self.settings)

    def _answers(
        self,
        index: Index,
        questions: Sequence[str],
        vectors: np.ndarray,
        k: int | None,
        dense_ids: Sequence[np.ndarray | None],
    ) -> list[Answer]:
        """Retrieve for every question, then judge all their candidates, a group of questions at a time."""
        if k is not None and k < 1:
            raise InputError(f"k ({k}) must be at least 1")
        k = k or self.settings.snippets
        scorer = self.scorer
        if scorer is None:
            return [
                answer(index, q, *self.retrieve(q, v, d, index), self.settings, k)
                for q, v, d in zip(questions, vectors, dense_ids, strict=True)
            ]
        out: list[Answer | None] = [None] * len(questions)
        items, where = [], []
        for i, (q, v, d) in enumerate(zip(questions, vectors, dense_ids, strict=True)):
            if not is_english_script(q):
                out[i] = Answer(q, (), True, NOT_ENGLISH, scorer=scorer.name)
                continue
            hits, scored = self.retrieve(q, v, d, index)
            cands = candidates(index, scored, self.settings.scorer_candidates, scorer.reads_context)
            question_cues = cues(index, q, hits)
            items.append((q, question_cues, cands, features(question_cues, cands)))
            where.append(i)
        for at in range(0, len(items), JUDGE_GROUP):
            group = items[at : at + JUDGE_GROUP]
            for i, item, judgement in zip(where[at : at + JUDGE_GROUP], group, scorer.judge_many(group), strict=True):
                out[i] = judged_answer(index, item[0], item[2], item[1], judgement, k, scorer.name)
        return [a for a in out if a is not None]

    def cite(self, citation_id: str, context: int = 300) -> Passage:
        """The cited passage with ``context`` characters of the source either side."""
        with self.reading() as index:
            return citing.resolve(index, citation_id, context)

    def find_quote(self, quote: str, limit: int = 20) -> list[QuoteMatch]:
        """Every place the quote occurs: exact, then normalised (case, spaces, quotes, dashes), then fuzzy."""
        with self.reading() as index:
            return find_quote(index, quote, limit)

    def sources(self) -> list[FileReport]:
        """Each indexed or skipped file with its ingest figures and warnings."""
        return self.manifest.reports()

    def corpus_root(self) -> Path:
        """The folder new files are added to: the first folder the index was built from."""
        for root in self.manifest.roots:
            if Path(root).is_dir():
                return Path(root)
        raise InputError("this index was not built from a folder; add files with `qa index FOLDER` instead")

    def add(self, files: Sequence[str | Path], *, on_progress: Progress | None = None) -> BuildReport:
        """Index ``files``: a file already inside a corpus folder is indexed where it is; any other is
        copied into the corpus folder under a safe name (and deleted again by ``remove``)."""
        with self._changing:
            manifest = self.manifest
            root = self.corpus_root()
            folders = [Path(r) for r in manifest.roots if Path(r).is_dir()]
            limit = int(self.settings.max_file_mb * 1e6)
            included: list[str] = []
            copied: list[Path] = []
            try:
                for file in files:
                    src = Path(os.path.abspath(file))
                    if any(src.is_relative_to(f) for f in folders):
                        safe_name(src.name)  # the same check of its type
                        included.append(str(src))
                        continue
                    target = self._copy_in(src, root, limit)
                    included.append(str(target))
                    if target not in copied and not manifest.is_managed(str(target)):
                        copied.append(target)
                excluded = [p for p in manifest.excluded if p not in included]
                managed = [*manifest.managed, *(str(p) for p in copied)]
                report = self._update(excluded, managed, on_progress)
                unreadable = {e.path: e.source for e in self.manifest.skipped.values()}
                dropped = [p for p in copied if str(p) in unreadable]
                # A file given from inside the corpus folder stays where it is, read or not.
                kept = {unreadable[p] for p in included if p in unreadable and Path(p) not in dropped}
                seconds = report.seconds
                if dropped:
                    # A copy the build could not read (a binary file named .txt, a broken PDF) is no
                    # use in the corpus folder: it goes again, and the report says why it was not added.
                    for path in dropped:
                        path.unlink(missing_ok=True)
                    copied.clear()  # the others are in the published index now: they stay, whatever follows
                    again = self._update(excluded, [m for m in managed if Path(m) not in dropped], on_progress)
                    seconds += again.seconds
                gone = {unreadable[str(p)] for p in dropped}
                told = [
                    replace(f, error=f.error + NOT_ADDED[1])
                    if f.source in gone
                    else replace(f, error=f.error + NOT_ADDED[0])
                    if f.source in kept
                    else f
                    for f in report.files
                ]
                # One the build passed over without a word: a hidden file, or one inside the index folder.
                seen = {e.path for e in (*self.manifest.files.values(), *self.manifest.skipped.values())}
                for p in included:
                    if p not in seen and Path(p) not in dropped:
                        name = Path(p).name
                        why = f"{name}: qa does not index hidden files or files inside the index folder"
                        told.append(FileReport(name, "skipped", error=why + NOT_ADDED[0]))
                return replace(report, files=tuple(told), seconds=seconds)
            except BaseException:
                for path in copied:  # the index did not take them: the corpus stays as it was
                    path.unlink(missing_ok=True)
                raise

    def _copy_in(self, src: Path, root: Path, limit: int) -> Path:
        """Copy ``src`` into ``root`` under a safe, unused name (or find it there already)."""
        name = safe_name(src.name)
        try:
            size = src.stat().st_size
            if size > limit:
                raise InputError(f"{src.name}: {over_limit(size, limit)}")
            data = src.read_bytes()
            target = root / name
            stem, n = target.stem, 2
            while target.exists():
                if target.read_bytes() == data:
                    return target  # the same file is there already
                target = root / f"{stem} ({n}){target.suffix}"
                n += 1
            with open(target, "xb") as out:
                out.write(data)
            return target
        except OSError as exc:
            raise InputError(f"{src}: could not be copied into {root} ({exc.strerror or exc})") from None

    def remove(self, source: str, *, delete_file: bool = False, on_progress: Progress | None = None) -> Removal:
        """Take ``source`` out of the index. Its file is deleted only when ``add`` copied it into the
        corpus folder, or when ``delete_file`` asks for it; the user's own files stay where they are."""
        with self._changing:
            manifest = self.manifest
            entry = manifest.entry(source)  # by its name in the sources list, or by its file's path
            if entry is None:
                raise InputError(f"{source!r} is not a source of this index; pick one from the sources list")
            source = entry.source
            if not entry.path:
                raise InputError(f"{source!r} was not read from a file of a corpus folder; it cannot be removed here")
            path = entry.path
            report = self._update(sorted({*manifest.excluded, path}), list(manifest.managed), on_progress)
            deleted = False
            # A copy `add` made is deleted, unless it changed since it was last indexed: the changes
            # are the user's work (an index rebuilt after the change already counts it as theirs).
            edited = manifest.is_managed(path) and not _unchanged(path, entry.sha256)
            if delete_file or (manifest.is_managed(path) and not edited):
                try:
                    os.unlink(path)  # a link is removed, never the file it points to
                    deleted = True
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise InputError(
                        f"{source} is out of the index, but {path} could not be deleted ({exc.strerror})"
                    ) from None
            return Removal(source, path, deleted, report, edited and not deleted)

    def reindex(self, *, on_progress: Progress | None = None) -> BuildReport:
        """Index the corpus folders again (unchanged files are reused) and switch to the result."""
        with self._changing:
            return self._update(None, None, on_progress)

    def _update(
        self, excluded: Sequence[str] | None, managed: Sequence[str] | None, on_progress: Progress | None
    ) -> BuildReport:
        """Build the index again from its own folders with its own settings, and answer from the result."""
        current = self.index
        manifest = current.manifest
        settings = manifest.settings(self.settings)
        embedder = self._build_embedder(settings)
        report = build_index(
            current.dir,
            [Path(r) for r in manifest.roots],
            settings,
            embedder,
            excluded=excluded,
            managed=managed,
            on_progress=on_progress,
            wait_s=600,
            backend=getattr(current, "backend", None),
        )
        export_models(current.dir, embedder, 600)
        self._live.switch_to(Index.open(current.dir, model=manifest.model))
        return report

    def _build_embedder(self, settings: Settings) -> ModelEmbedder:
        """The embedder a rebuild uses: this one when it can build, else one that loads the model
        only if a file needs embedding (tokenizer from the ONNX export, dimension from the manifest)."""
        if isinstance(self.embedder, ModelEmbedder):  # it has a tokenizer and a dimension
            return self.embedder
        from .ort import FileTokenizer, encoder_meta_ok, export_folder

        folder = export_folder(self.index.dir)
        if not encoder_meta_ok(folder, settings.model, settings.precision):
            return embedder_for(settings)
        manifest = self.manifest
        tokenizer = FileTokenizer(folder, manifest.max_tokens)
        return DeferredEmbedder(
            tokenizer, manifest.dimension, settings.model, settings.precision, lambda: embedder_for(settings)
        )

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._live.close()
