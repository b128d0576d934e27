"""The chunk index on SQLite: FTS5 (bm25) for words, the in-memory matrix for meaning.

What bm25 costs FTS5 grows with the chunks the query's words are in: a few
microseconds to score each chunk that has any of them, plus a pass over each word's
whole document list for its weight (idf, computed over the whole table, every
store). In prose a few words are in most chunks: ``"the" OR "reset"`` over 100k
chunks is ~100 ms, nearly all of it for "the", whose idf is near zero. So a search
first counts the chunks that have each word (FTS5 walks the word's document list,
stopping past ``LEXICAL_BUDGET``: at most ~0.1 ms a word), then ranks by bm25 over
the rarest words whose counts add up to at most ``LEXICAL_BUDGET``. When every word
is that common, the chunks that have all of them are ranked, if they are few
enough; otherwise words rank nothing and the dense ranking decides alone.

Counts are over the whole table, as bm25's idf is: a word frequent in the database
weighs little in any store, and is the first left out.
"""

from __future__ import annotations

import json
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.retrieval.index.sql_index import SqlChunkIndex

LEXICAL_BUDGET = 1000
"""Chunks bm25 scores at most per search and store (~4 µs each)."""

# bm25() is lower-better (negative); relevance is its negation.
_RANK = """
SELECT c.seq, -bm25(retrieval_chunks_fts) AS relevance
FROM retrieval_chunks_fts JOIN retrieval_chunks AS c ON c.seq = retrieval_chunks_fts.rowid
WHERE retrieval_chunks_fts MATCH :match AND c.vector_store_id = :store {files}
ORDER BY relevance DESC LIMIT :depth
"""
_ALL = sa.text(_RANK.format(files=""))
_SOME = sa.text(_RANK.format(files="AND c.file_id IN (SELECT value FROM json_each(:files))"))
_COUNT = (
    "(SELECT count(*) FROM (SELECT 1 FROM retrieval_chunks_fts "
    "WHERE retrieval_chunks_fts MATCH :m{i} LIMIT :cap))"
)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class SqliteChunkIndex(SqlChunkIndex):
    async def _lexical(
        self,
        conn: AsyncConnection,
        vector_store_id: str,
        terms: list[str],
        depth: int,
        files: Collection[str] | None,
    ) -> list[tuple[int, float]]:
        match = await self._match(conn, terms)
        if match is None:
            return []
        params: dict[str, object] = {"match": match, "store": vector_store_id, "depth": depth}
        statement = _ALL
        if files is not None:
            params["files"] = json.dumps(sorted(files))
            statement = _SOME
        rows = await conn.execute(statement, params)
        return [(int(seq), float(relevance)) for seq, relevance in rows]

    async def _match(self, conn: AsyncConnection, terms: list[str]) -> str | None:
        """The FTS5 expression to rank by (see the module's docstring), or ``None``."""
        counted = await self._counts(conn, [_quoted(t) for t in terms])
        present = sorted((n, i) for i, n in enumerate(counted) if n)
        chosen: list[str] = []
        total = 0
        for n, i in present:
            if total + n > LEXICAL_BUDGET:
                break
            chosen.append(_quoted(terms[i]))
            total += n
        if chosen:
            return " OR ".join(chosen)
        if not present:
            return None
        every = " AND ".join(_quoted(terms[i]) for _, i in present)
        (together,) = await self._counts(conn, [every])
        return every if 0 < together <= LEXICAL_BUDGET else None

    async def _counts(self, conn: AsyncConnection, matches: list[str]) -> list[int]:
        """For each FTS5 expression, its matches, counted up to ``LEXICAL_BUDGET + 1``."""
        statement = sa.text("SELECT " + ", ".join(_COUNT.format(i=i) for i in range(len(matches))))
        params: dict[str, object] = {f"m{i}": m for i, m in enumerate(matches)}
        params["cap"] = LEXICAL_BUDGET + 1
        row = (await conn.execute(statement, params)).one()
        return [int(n) for n in row]
