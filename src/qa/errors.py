"""Errors raised by qa.

Every error a user can cause is a ``QAError`` whose message is one line that names the bad file or
value and says what to do. The CLI prints it and exits non-zero; the UI shows it as ``gr.Error``.

    QAError
    ├── ConfigError       a setting or argument is out of range
    ├── IngestError       one file cannot be read (the build reports it and goes on)
    ├── IndexFolderError       the index folder is missing, damaged, locked or built with another model
    │   └── IndexLockedError
    ├── CitationError     a citation id is malformed or no longer resolves
    └── InputError        a question or question file cannot be used
"""

from __future__ import annotations


class QAError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(QAError):
    """A setting or argument is out of range."""


class IngestError(QAError):
    """A file cannot be read; the build skips it and reports why."""


class IndexFolderError(QAError):
    """The index folder is missing, damaged or incompatible."""


class IndexLockedError(IndexFolderError):
    """Another build holds the index folder."""


class CitationError(QAError):
    """A citation id is malformed or does not resolve in this index."""


class InputError(QAError):
    """A question or a question file cannot be used."""
