"""The chunk index over SQL, shared by both engines; each engine's module adds its
full-text search (and, on PostgreSQL with pgvector, its dense search).

A search, in one read transaction:

1. the stores' versions (one query); a store whose cached entry is stale has its
   files and attributes (and, when searched densely in memory, its embeddings)
   loaded again;
2. ``filters`` evaluated on each file's attributes: the files that pass are the
   only ones either ranking may draw from (filters apply before ranking);
3. the dense ranking (cosine) and the lexical ranking (full-text), ``depth``
   candidates each, fused by reciprocal rank (``fusion``);
4. ``score_threshold`` and ``max_results`` on the fused list, then the hits' text.
"""

from __future__ import annotations

import asyncio
import heapq
import secrets
import weakref
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.retrieval.errors import EmbeddingMismatch
from threadline.retrieval.filters import Filter, matches
from threadline.retrieval.index.fusion import HYBRID_WEIGHTS, fuse
from threadline.retrieval.index.model import (
    MAX_RESULTS,
    AttributeValue,
    IndexedChunk,
    SearchHit,
    SearchMode,
    Vector,
)
from threadline.retrieval.index.query_terms import query_terms
from threadline.retrieval.index.store_cache import (
    StoreCache,
    StoreEntry,
    StoreFile,
    StoreMatrix,
    build_matrix,
)
from threadline.storage import tables
from threadline.storage.db import Database

DEPTH = 100
"""Candidates each ranking contributes to the fusion."""

_chunks = tables.retrieval_chunks
_files = tables.retrieval_files
_stores = tables.retrieval_stores
_caches: weakref.WeakKeyDictionary[Database, StoreCache] = weakref.WeakKeyDictionary()

Allowed = Mapping[str, Collection[str] | None]
"""Per store, the file ids a search may return (``None``: all of them)."""


class SqlChunkIndex:
    """``ChunkIndex`` on a ``Database``; subclasses supply the full-text ranking."""

    def __init__(self, db: Database) -> None:
        self.db = db
        cache = _caches.get(db)
        if cache is None:
            cache = _caches[db] = StoreCache()
        self.cache = cache

    # -- writes ------------------------------------------------------------

    async def add(self, vector_store_id: str, chunks: Sequence[IndexedChunk]) -> None:
        if not chunks:
            return
        dimensions = _check_embeddings(chunks)
        files: dict[str, IndexedChunk] = {}
        for chunk in chunks:
            files.setdefault(chunk.file_id, chunk)
        async with self.db.write() as conn:
            held = await conn.scalar(
                sa.select(_chunks.c.dimensions)
                .where(_chunks.c.vector_store_id == vector_store_id)
                .limit(1)
            )
            if held is not None and held != dimensions:
                raise EmbeddingMismatch(
                    f"store {vector_store_id} holds {held}-dimension embeddings, not {dimensions}"
                )
            await conn.execute(
                self._insert(_files).on_conflict_do_nothing(),
                [
                    {
                        "vector_store_id": vector_store_id,
                        "file_id": c.file_id,
                        "filename": c.filename,
                        "attributes": dict(c.attributes),
                    }
                    for c in files.values()
                ],
            )
            await self._insert_chunks(conn, vector_store_id, dimensions, chunks)
            await self._touch(conn, vector_store_id)

    async def delete_file(self, vector_store_id: str, file_id: str) -> None:
        async with self.db.write() as conn:
            for table in (_chunks, _files):
                await conn.execute(
                    sa.delete(table).where(
                        table.c.vector_store_id == vector_store_id, table.c.file_id == file_id
                    )
                )
            await self._touch(conn, vector_store_id)

    async def delete_store(self, vector_store_id: str) -> None:
        async with self.db.write() as conn:
            for table in (_chunks, _files, _stores):
                await conn.execute(
                    sa.delete(table).where(table.c.vector_store_id == vector_store_id)
                )
        self.cache.forget(vector_store_id)

    async def set_attributes(
        self, vector_store_id: str, file_id: str, attributes: Mapping[str, AttributeValue]
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(_files)
                .where(_files.c.vector_store_id == vector_store_id, _files.c.file_id == file_id)
                .values(attributes=dict(attributes))
            )
            await self._touch(conn, vector_store_id)

    def _insert(self, table: sa.Table) -> Any:
        dialect = sqlite if self.db.is_sqlite else postgresql
        return dialect.insert(table)

    async def _insert_chunks(
        self,
        conn: AsyncConnection,
        vector_store_id: str,
        dimensions: int,
        chunks: Sequence[IndexedChunk],
    ) -> None:
        await conn.execute(
            self._insert(_chunks).on_conflict_do_nothing(),
            [chunk_row(vector_store_id, dimensions, c) for c in chunks],
        )

    async def _touch(self, conn: AsyncConnection, vector_store_id: str) -> None:
        """Give the store a new version (see ``store_cache``)."""
        version = secrets.randbits(62)
        await conn.execute(
            self._insert(_stores)
            .values(vector_store_id=vector_store_id, version=version)
            .on_conflict_do_update(index_elements=["vector_store_id"], set_={"version": version})
        )

    # -- search ------------------------------------------------------------

    async def search(
        self,
        vector_store_ids: Sequence[str],
        *,
        query: str,
        query_embedding: Vector,
        max_results: int = 10,
        filters: Filter | None = None,
        score_threshold: float = 0.0,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]:
        if not 1 <= max_results <= MAX_RESULTS:
            raise ValueError(f"max_results must be 1..{MAX_RESULTS}, not {max_results}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be 0..1, not {score_threshold}")
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown search mode {mode!r}")
        stores = list(dict.fromkeys(vector_store_ids))
        query_vector = np.asarray(query_embedding, dtype=np.float32).reshape(-1)
        async with self.db.read() as conn:
            entries = await self._entries(conn, stores, with_matrix=mode != "lexical")
            allowed: dict[str, Collection[str] | None] = {
                store: _passing(entry, filters) for store, entry in entries.items()
            }
            allowed = {s: a for s, a in allowed.items() if a is None or a}
            if not allowed:
                return []
            rankings = await self._rankings(conn, entries, query, query_vector, allowed, mode)
            weights = HYBRID_WEIGHTS if len(rankings) == 2 else None
            fused = [
                (seq, score)
                for seq, score in fuse(rankings, weights=weights)
                if score >= score_threshold
            ][:max_results]
            if not fused:
                return []
            rows = await conn.execute(
                sa.select(
                    _chunks.c.seq,
                    _chunks.c.vector_store_id,
                    _chunks.c.file_id,
                    _chunks.c.chunk_index,
                    _chunks.c.text,
                ).where(_chunks.c.seq.in_([seq for seq, _ in fused]))
            )
            by_seq = {row.seq: row for row in rows}
        hits = []
        for seq, score in fused:
            row = by_seq[seq]
            file = entries[row.vector_store_id].files.get(row.file_id)
            hits.append(
                SearchHit(
                    vector_store_id=row.vector_store_id,
                    file_id=row.file_id,
                    filename=file.filename if file else "",
                    chunk_index=row.chunk_index,
                    text=row.text,
                    score=score,
                    attributes=dict(file.attributes) if file else {},
                )
            )
        return hits

    async def _rankings(
        self,
        conn: AsyncConnection,
        entries: Mapping[str, StoreEntry],
        query: str,
        query_vector: Vector,
        allowed: Allowed,
        mode: SearchMode,
    ) -> list[list[int]]:
        """The mode's rankings. The in-memory dense ranking runs in a worker thread
        while the database ranks by words, so that they take the time of the longer."""
        if mode == "lexical":
            return [await self._lexical_all(conn, query, allowed)]
        for store in allowed:
            held = entries[store].dimensions
            if held is not None and held != query_vector.shape[0]:
                raise EmbeddingMismatch(
                    f"the query has {query_vector.shape[0]} dimensions, store {store} {held}"
                )
        if not self._in_memory(int(query_vector.shape[0])):
            dense = await self._dense_sql(conn, query_vector, allowed)
            if mode == "dense":
                return [dense]
            return [dense, await self._lexical_all(conn, query, allowed)]
        if mode == "dense":
            return [await _dense_in_memory(entries, query_vector, allowed)]
        async with asyncio.TaskGroup() as group:
            dense_job = group.create_task(_dense_in_memory(entries, query_vector, allowed))
            lexical = await self._lexical_all(conn, query, allowed)
        return [dense_job.result(), lexical]

    def _in_memory(self, dimensions: int) -> bool:
        """Whether vectors of ``dimensions`` are searched in the in-memory matrix."""
        return True

    async def _dense_sql(self, conn: AsyncConnection, query: Vector, allowed: Allowed) -> list[int]:
        """The dense ranking computed by the database (where ``_in_memory`` is false)."""
        raise NotImplementedError

    async def _entries(
        self, conn: AsyncConnection, stores: list[str], *, with_matrix: bool
    ) -> dict[str, StoreEntry]:
        """The current cache entry of each of ``stores`` that has chunks."""
        result = await conn.execute(
            sa.select(_stores.c.vector_store_id, _stores.c.version).where(
                _stores.c.vector_store_id.in_(stores)
            )
        )
        versions: dict[str, int] = {row[0]: row[1] for row in result}
        entries: dict[str, StoreEntry] = {}
        for store in stores:
            if store not in versions:
                self.cache.forget(store)
                continue
            entry = self.cache.get(store, versions[store])
            if entry is None:
                dimensions = await conn.scalar(
                    sa.select(_chunks.c.dimensions)
                    .where(_chunks.c.vector_store_id == store)
                    .limit(1)
                )
                entry = StoreEntry(versions[store], await _load_files(conn, store), dimensions)
            in_memory = entry.dimensions is not None and self._in_memory(entry.dimensions)
            if with_matrix and in_memory and entry.matrix is None:
                entry.matrix = await load_matrix(conn, store)
            self.cache.put(store, entry)
            entries[store] = entry
        return entries

    async def _lexical_all(self, conn: AsyncConnection, query: str, allowed: Allowed) -> list[int]:
        terms = query_terms(query)
        if not terms:
            return []
        found: list[tuple[int, float]] = []
        for store, files in allowed.items():
            found.extend(await self._lexical(conn, store, terms, DEPTH, files))
        return [seq for seq, _ in heapq.nlargest(DEPTH, found, key=lambda pair: pair[1])]

    async def _lexical(
        self,
        conn: AsyncConnection,
        vector_store_id: str,
        terms: list[str],
        depth: int,
        files: Collection[str] | None,
    ) -> list[tuple[int, float]]:
        """The ``depth`` chunks of a store that best match any of ``terms``, as
        ``(seq, relevance)`` with relevance comparable across stores, higher better."""
        raise NotImplementedError


async def _dense_in_memory(
    entries: Mapping[str, StoreEntry], query: Vector, allowed: Allowed
) -> list[int]:
    found: list[tuple[int, float]] = []
    for store, files in allowed.items():
        matrix = entries[store].matrix
        if matrix is not None:
            found.extend(await matrix.nearest(query, DEPTH, files))
    return [seq for seq, _ in heapq.nlargest(DEPTH, found, key=lambda pair: pair[1])]


def _check_embeddings(chunks: Sequence[IndexedChunk]) -> int:
    dimensions = chunks[0].embedding.shape[-1]
    for chunk in chunks:
        vector = chunk.embedding
        if vector.ndim != 1 or vector.shape[0] != dimensions or dimensions == 0:
            raise EmbeddingMismatch(
                f"chunk {chunk.chunk_index} of {chunk.file_id}: embedding of shape "
                f"{vector.shape}, expected ({dimensions},)"
            )
        if not np.all(np.isfinite(vector)):
            raise EmbeddingMismatch(f"chunk {chunk.chunk_index} of {chunk.file_id}: not finite")
    return int(dimensions)


def chunk_row(vector_store_id: str, dimensions: int, chunk: IndexedChunk) -> dict[str, Any]:
    return {
        "vector_store_id": vector_store_id,
        "file_id": chunk.file_id,
        "chunk_index": chunk.chunk_index,
        "text": chunk.text,
        "dimensions": dimensions,
        "embedding": np.asarray(chunk.embedding, dtype="<f4").tobytes(),
    }


def _passing(entry: StoreEntry, filters: Filter | None) -> Collection[str] | None:
    if filters is None:
        return None
    return {file_id for file_id, f in entry.files.items() if matches(filters, f.attributes)}


async def _load_files(conn: AsyncConnection, vector_store_id: str) -> dict[str, StoreFile]:
    rows = await conn.execute(
        sa.select(_files.c.file_id, _files.c.filename, _files.c.attributes).where(
            _files.c.vector_store_id == vector_store_id
        )
    )
    return {row.file_id: StoreFile(row.filename, row.attributes or {}) for row in rows}


async def load_matrix(conn: AsyncConnection, vector_store_id: str) -> StoreMatrix:
    result = await conn.execute(
        sa.select(_chunks.c.seq, _chunks.c.file_id, _chunks.c.dimensions, _chunks.c.embedding)
        .where(_chunks.c.vector_store_id == vector_store_id)
        .order_by(_chunks.c.seq)
    )
    return build_matrix([(r[0], r[1], r[2], bytes(r[3])) for r in result])
