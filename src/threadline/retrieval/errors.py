"""Errors of the retrieval package.

    RetrievalError
    ├── InvalidFilter        a search's ``filters`` is malformed (carries the param path)
    └── EmbeddingMismatch    vectors whose dimensions differ from the store's

The HTTP edge turns ``InvalidFilter`` into a 400 with ``param`` set.
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Root of the retrieval package's errors."""


class InvalidFilter(RetrievalError):
    """A ``ComparisonFilter`` / ``CompoundFilter`` that does not follow the spec."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class EmbeddingMismatch(RetrievalError):
    """An embedding whose dimensions do not match the others of its store or query."""
