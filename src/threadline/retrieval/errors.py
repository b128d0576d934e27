"""Errors the retrieval package raises.

    RetrievalError
    ├── UnsupportedFile      the file's extension or format is not one that can be parsed
    ├── InvalidFile          a supported format, but unreadable: corrupt, empty, no text
    ├── InvalidChunkingStrategy  a static chunking strategy outside the spec's bounds
    ├── EmbedderError        the embedder could not produce vectors (weights, endpoint)
    ├── InvalidFilter        a search's ``filters`` is malformed (carries the param path)
    └── EmbeddingMismatch    vectors whose dimensions differ from the store's

``UnsupportedFile`` and ``InvalidFile`` map to a vector store file's ``last_error.code``
(``unsupported_file`` / ``invalid_file``); ``InvalidChunkingStrategy`` and
``InvalidFilter`` name the offending parameter for a 400 at the HTTP edge.
"""

from __future__ import annotations


class RetrievalError(Exception):
    """The root of the retrieval package's errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFile(RetrievalError):
    """The file's type cannot be parsed for retrieval."""

    code = "unsupported_file"


class InvalidFile(RetrievalError):
    """The file claims a supported type but cannot be read as one (or holds no text)."""

    code = "invalid_file"


class InvalidChunkingStrategy(RetrievalError):
    """A chunking strategy outside the spec's bounds; ``param`` names the field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class EmbedderError(RetrievalError):
    """Embeddings could not be computed (missing or damaged weights, endpoint failure)."""


class InvalidFilter(RetrievalError):
    """A ``ComparisonFilter`` / ``CompoundFilter`` that does not follow the spec."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class EmbeddingMismatch(RetrievalError):
    """An embedding whose dimensions do not match the others of its store or query."""
