"""The chunk index of vector stores: hybrid (dense + full-text) search with filters.

``open_index(db)`` gives the implementation for the database's engine.
"""

from __future__ import annotations

from threadline.retrieval.index.model import (
    MAX_RESULTS,
    ChunkIndex,
    IndexedChunk,
    SearchHit,
    SearchMode,
)
from threadline.storage.db import Database

__all__ = ["MAX_RESULTS", "ChunkIndex", "IndexedChunk", "SearchHit", "SearchMode", "open_index"]


def open_index(db: Database) -> ChunkIndex:
    """The chunk index stored in ``db`` (its schema made by ``db.migrate()``)."""
    if db.is_sqlite:
        from threadline.retrieval.index.sqlite import SqliteChunkIndex

        return SqliteChunkIndex(db)
    from threadline.retrieval.index.postgres import PostgresChunkIndex

    return PostgresChunkIndex(db)
