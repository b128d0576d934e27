"""The chunk index on SQLite: FTS5 (bm25) for words, the in-memory matrix for meaning."""

from __future__ import annotations

import json
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.retrieval.index.query_terms import fts5_query
from threadline.retrieval.index.sql_index import SqlChunkIndex

# bm25() is lower-better (negative); the relevance returned is its negation.
_MATCH = """
SELECT c.seq, -bm25(retrieval_chunks_fts) AS relevance
FROM retrieval_chunks_fts JOIN retrieval_chunks AS c ON c.seq = retrieval_chunks_fts.rowid
WHERE retrieval_chunks_fts MATCH :match AND c.vector_store_id = :store {files}
ORDER BY bm25(retrieval_chunks_fts) LIMIT :depth
"""
_ALL = sa.text(_MATCH.format(files=""))
_SOME = sa.text(_MATCH.format(files="AND c.file_id IN (SELECT value FROM json_each(:files))"))


class SqliteChunkIndex(SqlChunkIndex):
    async def _lexical(
        self,
        conn: AsyncConnection,
        vector_store_id: str,
        terms: list[str],
        depth: int,
        files: Collection[str] | None,
    ) -> list[tuple[int, float]]:
        params: dict[str, object] = {
            "match": fts5_query(terms),
            "store": vector_store_id,
            "depth": depth,
        }
        statement = _ALL
        if files is not None:
            params["files"] = json.dumps(sorted(files))
            statement = _SOME
        rows = await conn.execute(statement, params)
        return [(int(seq), float(relevance)) for seq, relevance in rows]
