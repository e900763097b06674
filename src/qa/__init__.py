"""qa: answers questions from your documents with cited, verbatim snippets."""

from .assistant import Assistant
from .errors import CitationError, ConfigError, IndexFolderError, IngestError, InputError, QAError
from .settings import Settings
from .types import Answer, BuildReport, Citation, Document, FileReport, Passage, QuoteMatch, Snippet

__all__ = [
    "Answer",
    "Assistant",
    "BuildReport",
    "Citation",
    "CitationError",
    "ConfigError",
    "Document",
    "FileReport",
    "IndexFolderError",
    "IngestError",
    "InputError",
    "Passage",
    "QAError",
    "QuoteMatch",
    "Settings",
    "Snippet",
]
