"""The facade: open or build an index, then ask, cite and find quotes. Plain function calls."""

from __future__ import annotations

import re
import shutil
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import cite as citing
from .build import Progress, build_index
from .embed import Embedder, SentenceTransformerEmbedder
from .errors import InputError
from .extract import Scored, answer, score_sentences
from .index import Index, file_reports, read_manifest
from .ingest import SUPPORTED, discover
from .lexical import terms
from .quote import find_quote
from .retrieve import Hit, dense_candidates, search
from .settings import Settings
from .types import Answer, BuildReport, FileReport, Passage, QuoteMatch

MAX_QUESTION_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_question(question: str) -> str:
    """The question with control characters dropped and white space folded; InputError if unusable."""
    if not isinstance(question, str):
        raise InputError(f"a question must be text, not {type(question).__name__}")
    text = " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", question)).split())
    if not text:
        raise InputError("the question is empty; type a question")
    if len(text) > MAX_QUESTION_CHARS:
        raise InputError(
            f"the question is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS:,}: ask a shorter one"
        )
    return text


def _embedder(settings: Settings) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(settings.model, batch_size=settings.batch_size, precision=settings.precision)


def safe_name(name: str) -> str:
    """A file name that is safe to store: no folders, no hidden files, no odd characters."""
    base = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    stem, dot, ext = base.rpartition(".")
    if not dot or f".{ext.lower()}" not in SUPPORTED:
        raise InputError(f"{name}: unsupported type; upload .txt, .md or .pdf files")
    stem = re.sub(r"[^\w\s().,\-]", "_", stem).strip(" ._") or "upload"
    return f"{stem[:120]}.{ext.lower()}"


class Assistant:
    """Answers questions from an index with cited verbatim snippets."""

    def __init__(self, index: Index, embedder: Embedder, settings: Settings) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self._changing = threading.Lock()  # one add/remove at a time; questions go on meanwhile

    @classmethod
    def open(
        cls,
        index_dir: str | Path = "index",
        *,
        model: str | None = None,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> Assistant:
        """Open a built index. ``model``, when given, must be the model the index was built with."""
        index = Index.open(Path(index_dir), model)
        settings = (settings or Settings()).but(
            model=index.manifest["model"]["name"],
            precision=index.manifest["model"].get("precision", "fp32"),
            follow_links=index.manifest.get("follow_links", False),
        )
        return cls(index, embedder or _embedder(settings), settings)

    @staticmethod
    def build(
        corpus: str | Path | Sequence[str | Path],
        index_dir: str | Path = "index",
        *,
        settings: Settings | None = None,
        embedder: SentenceTransformerEmbedder | None = None,
        rebuild: bool = False,
        progress: bool = False,
        on_progress: Progress | None = None,
        wait_s: float = 0.0,
    ) -> BuildReport:
        """Index the files under ``corpus`` into ``index_dir``, reusing what has not changed."""
        settings = settings or Settings()
        roots = [Path(corpus)] if isinstance(corpus, (str, Path)) else [Path(p) for p in corpus]
        embedder = embedder or _embedder(settings)
        return build_index(
            Path(index_dir),
            roots,
            settings,
            embedder,
            rebuild=rebuild,
            progress=progress,
            on_progress=on_progress,
            wait_s=wait_s,
        )

    @staticmethod
    def is_stale(corpus: str | Path | Sequence[str | Path], index_dir: str | Path = "index") -> bool:
        """Whether the files under ``corpus`` differ from what the index was built from."""
        manifest = read_manifest(Path(index_dir))
        if manifest is None:
            return True
        roots = [Path(corpus)] if isinstance(corpus, (str, Path)) else [Path(p) for p in corpus]
        if manifest.get("roots") != [str(r.resolve()) for r in roots]:
            return True
        files, _ = discover(roots)
        known = {**manifest["files"], **manifest.get("skipped", {})}
        if sorted(known) != sorted(f.source for f in files):
            return True
        for f in files:
            st = f.path.stat()
            if (known[f.source].get("size"), known[f.source].get("mtime_ns")) != (st.st_size, st.st_mtime_ns):
                return True
        return False

    def ask(self, question: str, k: int | None = None) -> Answer:
        """The best verbatim answer to ``question`` with ``k`` snippets in all, or an abstention."""
        text = clean_question(question)
        return self._answer(self.index, text, self.embedder.embed([text])[0], k)

    def ask_many(self, questions: Sequence[str], k: int | None = None) -> list[Answer]:
        """Answers to many questions; the questions are embedded in batches."""
        texts = [clean_question(q) for q in questions]
        if not texts:
            return []
        vectors = self.embedder.embed(texts)
        index = self.index  # one index for the whole batch, even if add/remove swaps it meanwhile
        dense = dense_candidates(index, vectors, self.settings)
        return [self._answer(index, t, v, k, d) for t, v, d in zip(texts, vectors, dense, strict=True)]

    def retrieve(
        self, question: str, vector: np.ndarray, dense_ids: np.ndarray | None = None, index: Index | None = None
    ) -> tuple[list[Hit], list[Scored]]:
        """Ranked chunks and scored sentences for a cleaned question and its vector."""
        index = index or self.index
        words = terms(question)
        hits = search(index, vector, words, self.settings, dense_ids)
        return score_sentences(index, hits, vector, words, self.settings)

    def _answer(
        self, index: Index, question: str, vector: np.ndarray, k: int | None, dense_ids: np.ndarray | None = None
    ) -> Answer:
        if k is not None and k < 1:
            raise InputError(f"k ({k}) must be at least 1")
        hits, scored = self.retrieve(question, vector, dense_ids, index)
        return answer(index, question, hits, scored, self.settings, k or self.settings.snippets)

    def cite(self, citation_id: str, context: int = 300) -> Passage:
        """The cited passage with ``context`` characters of the source either side."""
        return citing.resolve(self.index, citation_id, context)

    def find_quote(self, quote: str, limit: int = 20) -> list[QuoteMatch]:
        """Every place the quote occurs: exact, then normalised (case, spaces, quotes, dashes), then fuzzy."""
        return find_quote(self.index, quote, limit)

    def sources(self) -> list[FileReport]:
        """Each indexed or skipped file with its ingest figures and warnings."""
        return file_reports(self.index.manifest)

    def corpus_root(self) -> Path:
        """The folder new files are added to: the first folder the index was built from."""
        for root in self.index.manifest.get("roots", []):
            if Path(root).is_dir():
                return Path(root)
        raise InputError("this index was not built from a folder; add files with `qa index FOLDER` instead")

    def add(self, files: Sequence[str | Path], *, on_progress: Progress | None = None) -> BuildReport:
        """Copy ``files`` into the corpus folder under safe names and index them (incrementally)."""
        root = self.corpus_root()
        limit = int(self.settings.max_file_mb * 1e6)
        for file in files:
            src = Path(file)
            name = safe_name(src.name)
            if src.stat().st_size > limit:
                raise InputError(
                    f"{src.name}: file is {src.stat().st_size / 1e6:.1f} MB, over the "
                    f"{self.settings.max_file_mb:g} MB limit"
                )
            target = root / name
            stem, n = target.stem, 2
            while target.exists() and target.read_bytes() != src.read_bytes():
                target = root / f"{stem} ({n}){target.suffix}"
                n += 1
            with self._changing:
                shutil.copyfile(src, target)
        with self._changing:
            return self.reindex(on_progress=on_progress)

    def remove(self, source: str, *, on_progress: Progress | None = None) -> BuildReport:
        """Delete an indexed file from the corpus folder and drop it from the index."""
        known = {**self.index.manifest["files"], **self.index.manifest.get("skipped", {})}
        if source not in known:
            raise InputError(f"{source!r} is not a source of this index; pick one from the sources list")
        roots = [Path(r).resolve() for r in self.index.manifest.get("roots", [])]
        path = Path(known[source].get("path", "")).resolve()
        if not any(path.is_relative_to(r) for r in roots if r.is_dir()):
            raise InputError(f"{source!r} is not inside a corpus folder; it cannot be removed here")
        with self._changing:
            path.unlink(missing_ok=True)
            return self.reindex(on_progress=on_progress)

    def reindex(self, *, on_progress: Progress | None = None) -> BuildReport:
        """Index the corpus folders again (unchanged files are reused) and switch to the result."""
        roots = [Path(r) for r in self.index.manifest.get("roots", [])]
        embedder = self.embedder if isinstance(self.embedder, SentenceTransformerEmbedder) else None
        report = Assistant.build(
            roots, self.index.dir, settings=self.settings, embedder=embedder, on_progress=on_progress, wait_s=600
        )
        old, self.index = self.index, Index.open(self.index.dir)
        old.close()
        return report

    def close(self) -> None:
        self.index.close()
