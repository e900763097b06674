"""The manifest: what an index was built from and with, parsed in one place.

Every path that builds, updates or opens an index (``qa index``, ``add``, ``remove``, ``serve``,
``Assistant.open``, the UI) takes the model, precision and chunk settings from here through
``Manifest.settings``, and the folders through ``Manifest.roots``, so an update never rebuilds
with other settings or from other folders than the index was built with.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import IndexFolderError
from .settings import Settings
from .store import MANIFEST, current_generation, rebuild_hint
from .types import FileReport

FORMAT_VERSION = 1


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _plain(value: Any) -> Any:
    """``value`` with its read-only mappings as dicts again, for JSON."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class FileEntry:
    """One file the build saw: where it was, and what was indexed from it or why it was skipped."""

    source: str
    path: str = ""  # absolute, links not resolved ("" for documents given in memory)
    size: int = -1
    mtime_ns: int = -1
    sha256: str = ""
    doc_id: str = ""
    pages: int = 0
    chars: int = 0
    sentences: int = 0
    chunks: int = 0
    warnings: tuple[str, ...] = ()
    error: str = ""  # why it was skipped; "" for an indexed file

    def report(self) -> FileReport:
        if self.error:
            return FileReport(self.source, "skipped", error=self.error)
        return FileReport(self.source, "indexed", self.pages, self.chars, self.sentences, self.chunks, self.warnings)

    def to_json(self) -> dict[str, Any]:
        where = {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns} if self.path else {}
        if self.error:
            return {**where, "error": self.error}
        return {
            "sha256": self.sha256,
            "doc_id": self.doc_id,
            **where,
            "pages": self.pages,
            "chars": self.chars,
            "sentences": self.sentences,
            "chunks": self.chunks,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, source: str, data: Mapping[str, Any]) -> FileEntry:
        return cls(
            source,
            str(data.get("path", "")),
            int(data.get("size", -1)),
            int(data.get("mtime_ns", -1)),
            str(data.get("sha256", "")),
            str(data.get("doc_id", "")),
            int(data.get("pages", 0)),
            int(data.get("chars", 0)),
            int(data.get("sentences", 0)),
            int(data.get("chunks", 0)),
            tuple(str(w) for w in data.get("warnings", ())),
            str(data.get("error", "")),
        )


@dataclass(frozen=True)
class Manifest:
    """Everything a build was asked for and what it made (``manifest.json`` of a generation)."""

    model: str
    dimension: int
    max_tokens: int
    precision: str  # what the encoder ran at: fp32, bf16 or int8 ("auto" is resolved before)
    chunk_tokens: int
    chunk_overlap: int
    title_in_chunks: bool
    lexical: str
    max_file_mb: float
    dense_index: str  # as asked: auto, flat or hnsw
    dense: Mapping[str, Any]  # what was made, and why
    follow_links: bool = False  # whether links leaving the roots were followed (qa index --follow-links)
    roots: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()  # files under the roots taken out of the index by `qa remove`
    managed: tuple[str, ...] = ()  # files `qa add` copied into a root: `qa remove` deletes them
    files: Mapping[str, FileEntry] = field(default_factory=lambda: _frozen({}))
    skipped: Mapping[str, FileEntry] = field(default_factory=lambda: _frozen({}))
    counts: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    built_at: str = ""
    # Where vectors and search live when not in the folder (qa.backends: Qdrant), else None.
    backend: Mapping[str, Any] | None = None
    format: int = FORMAT_VERSION

    def settings(self, base: Settings | None = None) -> Settings:
        """The Settings this index was built with: ``base`` (or the defaults) for everything else."""
        return (base or Settings()).but(
            model=self.model,
            precision=self.precision,
            chunk_tokens=self.chunk_tokens,
            chunk_overlap=self.chunk_overlap,
            title_in_chunks=self.title_in_chunks,
            max_file_mb=self.max_file_mb,
            dense_index=self.dense_index,
            exact_up_to=int(self.dense.get("exact_up_to", base.exact_up_to if base else Settings().exact_up_to)),
            follow_links=self.follow_links,
        )

    def embeds_like(self, settings: Settings, precision: str) -> bool:
        """Whether a build with ``settings`` at ``precision`` would give the same vectors and chunks."""
        mine = (self.model, self.precision, self.chunk_tokens, self.chunk_overlap, self.title_in_chunks)
        fields = settings.index_fields()
        theirs = (settings.model, precision, fields["chunk_tokens"], fields["chunk_overlap"], fields["title_in_chunks"])
        return mine == theirs and self.lexical == fields["lexical"]

    def entry(self, source: str) -> FileEntry | None:
        """The indexed or skipped file named ``source``, or whose file is at the path ``source``."""
        found = self.files.get(source) or self.skipped.get(source)
        if found is not None or not source:
            return found
        try:
            wanted = os.path.realpath(os.path.expanduser(source))
        except (OSError, ValueError):
            return None
        for e in (*self.files.values(), *self.skipped.values()):
            if e.path and (e.path == wanted or os.path.realpath(e.path) == wanted):
                return e
        return None

    def is_managed(self, path: str) -> bool:
        """Whether ``path`` was copied into a corpus folder by `qa add` (so removing it may delete it)."""
        return path in self.managed

    def reports(self) -> list[FileReport]:
        """Each indexed or skipped file with its ingest figures, by name."""
        entries = [*self.files.values(), *self.skipped.values()]
        return sorted((e.report() for e in entries), key=lambda r: r.source)

    def changed(self, index_dir: Path | None = None) -> list[str]:
        """Names of the files under the roots that were added, changed or removed since this build
        (nothing inside ``index_dir``, the index folder, as the build leaves it out)."""
        from .ingest import discover

        if not self.roots:
            return []
        leave_out = Path(index_dir).resolve() if index_dir is not None else None
        found, passed = discover([Path(r) for r in self.roots], self.follow_links, leave_out)
        excluded = set(self.excluded)
        known = {**self.files, **self.skipped}
        changes: list[str] = []
        seen = set()
        for f in found:
            if os.path.abspath(f.path) in excluded:
                continue
            seen.add(f.source)
            entry = known.get(f.source)
            try:
                st = f.path.stat()
            except OSError:
                continue
            if entry is None or (entry.size, entry.mtime_ns) != (st.st_size, st.st_mtime_ns):
                changes.append(f.source)
        seen.update(name for name, _ in passed)
        changes += [name for name in known if name not in seen]
        return sorted(changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "model": {
                "name": self.model,
                "dimension": self.dimension,
                "max_tokens": self.max_tokens,
                "precision": self.precision,
            },
            "settings": {
                "precision": self.precision,
                "chunk_tokens": self.chunk_tokens,
                "chunk_overlap": self.chunk_overlap,
                "title_in_chunks": self.title_in_chunks,
                "lexical": self.lexical,
                "max_file_mb": self.max_file_mb,
                "dense_index": self.dense_index,
                "follow_links": self.follow_links,
            },
            "dense": _plain(self.dense),
            "roots": list(self.roots),
            "excluded": list(self.excluded),
            "managed": list(self.managed),
            "built_at": self.built_at,
            "counts": dict(self.counts),
            "files": {name: e.to_json() for name, e in self.files.items()},
            "skipped": {name: e.to_json() for name, e in self.skipped.items()},
            **({"backend": _plain(self.backend)} if self.backend else {}),
        }

    @classmethod
    def from_json(cls, data: Any, index_dir: Path) -> Manifest:
        """Parse a manifest; IndexFolderError when it is not one this qa reads."""
        found = data.get("format") if isinstance(data, dict) else None
        if found != FORMAT_VERSION:
            raise IndexFolderError(
                f"{index_dir} has index format {found!r}, this qa reads format {FORMAT_VERSION}; "
                f"{rebuild_hint(index_dir)}"
            )
        try:
            model, shape = data["model"], data["settings"]
            dense = dict(data.get("dense", {}))
            defaults = Settings()
            return cls(
                model=str(model["name"]),
                dimension=int(model["dimension"]),
                max_tokens=int(model.get("max_tokens", 0)),
                precision=str(model.get("precision", shape.get("precision", "fp32"))),
                chunk_tokens=int(shape["chunk_tokens"]),
                chunk_overlap=int(shape["chunk_overlap"]),
                title_in_chunks=bool(shape.get("title_in_chunks", True)),
                lexical=str(shape.get("lexical", "")),
                max_file_mb=float(shape.get("max_file_mb", defaults.max_file_mb)),
                dense_index=str(shape.get("dense_index", dense.get("requested", "auto"))),
                dense=_frozen(dense),
                follow_links=bool(shape.get("follow_links", data.get("follow_links", False))),
                roots=tuple(str(r) for r in data.get("roots", ())),
                excluded=tuple(str(p) for p in data.get("excluded", ())),
                managed=tuple(str(p) for p in data.get("managed", ())),
                files=_frozen({n: FileEntry.from_json(n, e) for n, e in data.get("files", {}).items()}),
                skipped=_frozen({n: FileEntry.from_json(n, e) for n, e in data.get("skipped", {}).items()}),
                counts=_frozen({str(k): int(v) for k, v in data.get("counts", {}).items()}),
                built_at=str(data.get("built_at", "")),
                backend=_frozen(data["backend"]) if data.get("backend") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexFolderError(
                f"{index_dir} is damaged ({MANIFEST} lacks or garbles {exc}); {rebuild_hint(index_dir)}"
            ) from None

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_generation(index_dir: Path, gen: Path) -> Manifest:
    """The manifest of generation ``gen``; FileNotFoundError when the generation is gone."""
    try:
        data = json.loads((gen / MANIFEST).read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise IndexFolderError(
            f"{index_dir} is damaged ({MANIFEST} unreadable: {reason}); {rebuild_hint(index_dir)}"
        ) from None
    return Manifest.from_json(data, index_dir)


def read_manifest(index_dir: Path) -> Manifest | None:
    """The manifest of the index in use, or None when there is no index yet."""
    for _ in range(5):  # a build may switch CURRENT and remove the old generation meanwhile
        gen = current_generation(index_dir)
        if gen is None:
            return None
        try:
            return read_generation(index_dir, gen)
        except FileNotFoundError:
            if current_generation(index_dir) == gen:
                break
    missing = f"{gen.name if gen is not None else '?'}/{MANIFEST}"  # gen is set: the loop ran
    raise IndexFolderError(f"{index_dir} is damaged ({missing} is missing); {rebuild_hint(index_dir)}")


def build_settings(index_dir: Path, **changes: Any) -> Settings:
    """The Settings a build of ``index_dir`` uses: ``changes`` (flags given), else what it was built with."""
    manifest = read_manifest(index_dir)
    base = manifest.settings() if manifest is not None else Settings()
    return base.but(**{k: v for k, v in changes.items() if v is not None})
