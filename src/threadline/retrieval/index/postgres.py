"""The chunk index on PostgreSQL: full-text search (``ts_rank_cd`` over the generated
``tsv`` column) for words; for meaning, pgvector's HNSW index where the extension
exists (migration 0002 adds ``embedding_vec`` then), the in-memory matrix otherwise.

A vector column needs a fixed size to be indexed, and stores may hold embeddings of
different models, so each size gets its own partial expression index, made by the
first ``add`` of that size: ``(embedding_vec::vector(D)) WHERE dimensions = D``.
pgvector indexes at most 2,000 dimensions; larger vectors are searched exactly.
A filtered or multi-store HNSW search uses pgvector's iterative scan, so that
filtering does not starve the result list.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Collection, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.retrieval.index.model import IndexedChunk, Vector
from threadline.retrieval.index.query_terms import tsquery_text
from threadline.retrieval.index.sql_index import (
    DEPTH,
    Allowed,
    SqlChunkIndex,
    chunk_row,
)
from threadline.retrieval.index.store_cache import StoreEntry
from threadline.storage.db import Database

HNSW_MAX_DIMENSIONS = 2000
EF_SEARCH = 2 * DEPTH
"""HNSW candidate list of a search: it bounds how many rows one search can return."""

_LEXICAL = """
SELECT seq, ts_rank_cd(tsv, query) AS relevance
FROM retrieval_chunks, to_tsquery('english', :query) AS query
WHERE vector_store_id = :store AND tsv @@ query {files}
ORDER BY relevance DESC, seq LIMIT :depth
"""
_FILES = "AND file_id = ANY(:files)"
LEXICAL_BUDGET = 1000
"""Chunks ``ts_rank_cd`` reads at most per search and store (estimated)."""
# Per word (1-based position): the chunks estimated to have it, from the planner's
# statistics of ``tsv`` (its most common lexemes and their frequencies, kept by
# ANALYZE / autovacuum): a lexeme not among them is rarer than all that are and
# counts as 0; ``known`` is false for a word with no lexeme (a stop word).
_ESTIMATES = """
WITH stats AS (
    SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs
    FROM pg_stats
    WHERE schemaname = current_schema() AND tablename = 'retrieval_chunks' AND attname = 'tsv'
), total AS (
    SELECT greatest(reltuples, 0) AS n FROM pg_class WHERE oid = 'retrieval_chunks'::regclass
)
SELECT w.i,
       coalesce((SELECT max(s.freqs[array_position(s.elems, l.lexeme)])
                 FROM stats AS s, unnest(to_tsvector('english', w.word)) AS l), 0)
       * (SELECT n FROM total),
       EXISTS (SELECT 1 FROM unnest(to_tsvector('english', w.word))),
       (SELECT n FROM total)
FROM unnest(CAST(:words AS text[])) WITH ORDINALITY AS w(word, i)
"""
_INSERT_WITH_VECTOR = sa.text(
    """
INSERT INTO retrieval_chunks
    (vector_store_id, file_id, chunk_index, text, dimensions, embedding, embedding_vec)
VALUES (:vector_store_id, :file_id, :chunk_index, :text, :dimensions, :embedding,
        CAST(:vec AS vector))
ON CONFLICT DO NOTHING
"""
)
_has_pgvector: weakref.WeakKeyDictionary[Database, bool] = weakref.WeakKeyDictionary()


class PostgresChunkIndex(SqlChunkIndex):
    _has_vector = False
    """Whether the schema has pgvector's column (read at the start of each search)."""

    async def _pgvector(self, conn: AsyncConnection) -> bool:
        """Whether the schema has the pgvector column (decided once per database)."""
        known = _has_pgvector.get(self.db)
        if known is None:
            found = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM information_schema.columns "
                    "WHERE table_schema = current_schema() "
                    "AND table_name = 'retrieval_chunks' AND column_name = 'embedding_vec'"
                )
            )
            known = _has_pgvector[self.db] = bool(found)
        return known

    async def _insert_chunks(
        self,
        conn: AsyncConnection,
        vector_store_id: str,
        dimensions: int,
        chunks: Sequence[IndexedChunk],
    ) -> None:
        if not await self._pgvector(conn):
            await super()._insert_chunks(conn, vector_store_id, dimensions, chunks)
            return
        if dimensions <= HNSW_MAX_DIMENSIONS:
            await _ensure_hnsw(conn, dimensions)
        rows = []
        for chunk in chunks:
            row = chunk_row(vector_store_id, dimensions, chunk)
            row["vec"] = _vector_literal(chunk.embedding)
            rows.append(row)
        await conn.execute(_INSERT_WITH_VECTOR, rows)

    async def _entries(
        self, conn: AsyncConnection, stores: list[str], *, with_matrix: bool
    ) -> dict[str, StoreEntry]:
        self._has_vector = await self._pgvector(conn)
        return await super()._entries(conn, stores, with_matrix=with_matrix)

    def _in_memory(self, dimensions: int) -> bool:
        return not self._has_vector or dimensions > HNSW_MAX_DIMENSIONS

    async def _dense_sql(self, conn: AsyncConnection, query: Vector, allowed: Allowed) -> list[int]:
        dimensions = int(query.shape[0])
        await conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}"))
        await conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        found: list[tuple[int, float]] = []
        distance = f"embedding_vec::vector({dimensions}) <=> CAST(:query AS vector({dimensions}))"
        for store, files in allowed.items():
            statement = (
                f"SELECT seq, {distance} AS distance FROM retrieval_chunks "
                f"WHERE vector_store_id = :store AND dimensions = {dimensions} "
                f"{_FILES if files is not None else ''} "
                f"ORDER BY {distance} LIMIT :depth"
            )
            params: dict[str, object] = {
                "query": _vector_literal(query),
                "store": store,
                "depth": DEPTH,
            }
            bound = sa.text(statement)
            if files is not None:
                bound = bound.bindparams(sa.bindparam("files", type_=ARRAY(sa.String)))
                params["files"] = sorted(files)
            rows = await conn.execute(bound, params)
            found.extend((int(seq), -float(d)) for seq, d in rows)
        found.sort(key=lambda pair: -pair[1])  # relaxed order: nearly sorted
        return [seq for seq, _ in found[:DEPTH]]

    async def _lexical(
        self,
        conn: AsyncConnection,
        vector_store_id: str,
        terms: list[str],
        depth: int,
        files: Collection[str] | None,
    ) -> list[tuple[int, float]]:
        query = await _rankable(conn, terms)
        if query is None:
            return []
        params: dict[str, object] = {"query": query, "store": vector_store_id, "depth": depth}
        statement = sa.text(_LEXICAL.format(files=_FILES if files is not None else ""))
        if files is not None:
            statement = statement.bindparams(sa.bindparam("files", type_=ARRAY(sa.String)))
            params["files"] = sorted(files)
        rows = await conn.execute(statement, params)
        return [(int(seq), float(relevance)) for seq, relevance in rows]


async def _rankable(conn: AsyncConnection, terms: list[str]) -> str | None:
    """The ``to_tsquery`` text to rank by: the rarest of ``terms`` whose estimated
    chunks add up to at most ``LEXICAL_BUDGET``, OR-ed; when every word is more
    common, all of them AND-ed, if few enough chunks are estimated to have them all;
    else ``None``. ``ts_rank_cd`` reads each matching chunk's ``tsv``: without this,
    a query with one word that most chunks have ranks the whole store."""
    rows = await conn.execute(
        sa.text(_ESTIMATES).bindparams(sa.bindparam("words", type_=ARRAY(sa.String))),
        {"words": terms},
    )
    chunks = 0.0
    estimates: list[tuple[float, int]] = []
    for i, n, known, total_chunks in rows:
        chunks = float(total_chunks or 0)
        if known:
            estimates.append((float(n), i))
    estimates.sort()
    chosen: list[str] = []
    total = 0.0
    for n, i in estimates:
        if total + n > LEXICAL_BUDGET:  # n: the planner's estimate (0 for rare words)
            break
        chosen.append(terms[i - 1])
        total += n
    if chosen:
        return tsquery_text(chosen)
    if len(estimates) < 2 or chunks <= 0:
        return None
    together = chunks * math.prod(n / chunks for n, _ in estimates)  # independent words
    if together > LEXICAL_BUDGET:
        return None
    return tsquery_text([terms[i - 1] for _, i in estimates], operator="&")


async def _ensure_hnsw(conn: AsyncConnection, dimensions: int) -> None:
    """The HNSW index of vectors of ``dimensions`` (made once; concurrent makers of
    the same index wait on each other's transaction-scoped lock)."""
    name = f"ix_retrieval_chunks_hnsw_{dimensions}"
    exists = await conn.scalar(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name})
    if exists:
        return
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(74202, :d)"), {"d": dimensions})
    await conn.execute(
        sa.text(
            f"CREATE INDEX IF NOT EXISTS {name} ON retrieval_chunks USING hnsw "
            f"((embedding_vec::vector({dimensions})) vector_cosine_ops) "
            f"WHERE dimensions = {dimensions}"
        )
    )


def _vector_literal(vector: Vector) -> str:
    """pgvector's text form of ``vector``: ``[x1,x2,...]``."""
    values = np.asarray(vector, dtype=np.float32).tolist()
    return "[" + ",".join(repr(v) for v in values) + "]"
