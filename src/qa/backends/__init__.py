"""Where an index's vectors and search live: the embedded folder (default) or a Qdrant collection.

The embedded default keeps everything in ``INDEX/`` (FAISS + bm25s + SQLite). With
``backend="qdrant"`` the folder keeps the manifest and the SQLite metadata (documents' text and
every sentence and chunk as offsets, which citations resolve against), and the vectors and BM25
sparse vectors live in Qdrant: in-process (Qdrant Edge, ``path``) or on a server (``url``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IndexFolderError
from ..index import Index
from ..manifest import read_manifest

EXTRAS = {"qdrant_edge": "qdrant", "qdrant_client": "qdrant", "ray": "ray"}


def require(module: str) -> Any:
    """Import an optional dependency, or raise ConfigError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module.split(".")[0], module)
        raise ConfigError(
            f"{module} is not installed; install it with: pip install 'qa[{extra}]'",
        ) from None


@dataclass(frozen=True)
class Backend:
    """Where a Qdrant-backed index keeps its points: an in-process folder or a server URL."""

    path: str | None = None
    url: str | None = None
    collection: str = "qa"
    api_key: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.url is None):
            raise ConfigError("the qdrant backend needs exactly one of --qdrant-path DIR or --qdrant-url URL")
        if not self.collection or not self.collection.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"collection name {self.collection!r} must be letters, digits, - and _")

    @classmethod
    def from_manifest(cls, described: dict[str, Any], url: str | None = None, api_key: str | None = None) -> Backend:
        """The backend a manifest names (``url``, when given, replaces the server address)."""
        if described.get("name") != "qdrant":
            raise IndexFolderError(f"index backend {described.get('name')!r} is not known to this qa")
        if url is not None and described.get("url") is not None:
            return cls(url=url, collection=described["collection"], api_key=api_key)
        return cls(described.get("path"), described.get("url"), described["collection"], api_key)

    def describe(self) -> dict[str, Any]:
        """What the manifest records (never the API key)."""
        where = {"path": str(Path(self.path).resolve())} if self.path is not None else {"url": self.url}
        return {"name": "qdrant", **where, "collection": self.collection}

    def same_place(self, described: dict[str, Any] | None) -> bool:
        """Whether a manifest's backend is this one (its points can be reused)."""
        if not described:
            return False
        mine = self.describe()
        return all(described.get(k) == mine[k] for k in ("name", "collection")) and (
            described.get("path") == mine.get("path") and described.get("url") == mine.get("url")
        )


def backend_of(index_dir: Path) -> Backend | None:
    """The backend the index in ``index_dir`` was built with (None: the folder, or no index yet)."""
    manifest = read_manifest(index_dir)
    described = manifest.backend if manifest is not None else None
    return Backend.from_manifest(dict(described)) if described else None


def open_index(index_dir: Path, model: str | None = None, backend: Backend | None = None) -> Index:
    """Open the index in ``index_dir`` with whichever backend its manifest names (``Index.open``)."""
    return Index.open(index_dir, model, backend=backend)
