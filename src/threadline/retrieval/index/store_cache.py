"""What a process keeps in memory of each vector store it searches: the files with
their attributes, and the store's embeddings as one matrix for exact dense search.

An entry is tagged with the store's ``version`` (``retrieval_stores``), which every
change of the store replaces with a fresh random value in the same transaction; a
search reads the version first (one primary-key lookup) and reloads what no longer
matches, so a change made by any process is seen by the next search.

Exact search over the matrix: one matrix-vector product (~38 MFLOP for 100k chunks
of 384 dimensions) and a partial sort. Read from SQL instead, the same vectors cost
a full scan and a decode of every blob per query.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController
from usearch.compiled import MetricKind
from usearch.index import search

from threadline.retrieval.errors import EmbeddingMismatch
from threadline.retrieval.index.model import AttributeValue, Vector

MAX_CACHED_ROWS = 2_000_000
"""Embeddings kept in memory at most, all stores together (about 3 GB at 384
dimensions); the stores searched longest ago are dropped first."""
OFF_LOOP_ROWS = 20_000
"""From this many rows the product runs in a worker thread (numpy releases the
GIL), so that the event loop keeps serving while it runs, on as many BLAS threads
as BLAS likes. Below, it runs on one: waking BLAS's threads for a product of a few
megabytes cost more than the product (10k x 384 on 2 busy cores: 18 ms on two
threads, 2 ms on one)."""
_BLAS = ThreadpoolController()
QUANTISED_ROWS = 20_000
"""From this many rows, an unfiltered search first ranks the rows by their int8
copy (usearch's SIMD kernels over a quarter of the bytes), then re-ranks the best
``RERANK`` times ``depth`` exactly in float32: at 100k x 384, ~5-8 ms against ~18
for numpy's float32 product on the same machine. Exact search is memory-bound:
the int8 copy is what a query has to read."""
RERANK = 4
_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class StoreFile:
    filename: str
    attributes: Mapping[str, AttributeValue]


@dataclass(frozen=True)
class StoreMatrix:
    """A store's embeddings, one row per chunk (``seqs`` are the chunks' row ids)."""

    seqs: npt.NDArray[np.int64]
    file_codes: npt.NDArray[np.int32]
    file_ids: tuple[str, ...]
    vectors: Vector
    quantised: npt.NDArray[np.int8] | None = None
    """``vectors`` scaled to int8, for stores of ``QUANTISED_ROWS`` rows or more."""

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1])

    async def nearest(
        self, query: Vector, depth: int, allowed_files: Collection[str] | None
    ) -> list[tuple[int, float]]:
        """The ``depth`` rows closest to ``query`` (cosine), as ``(seq, similarity)``,
        among the rows of ``allowed_files`` (all rows when ``None``)."""
        if len(self.seqs) == 0:
            return []
        if query.shape[0] != self.dimensions:
            raise EmbeddingMismatch(
                f"the query has {query.shape[0]} dimensions, the store {self.dimensions}"
            )
        if len(self.seqs) >= OFF_LOOP_ROWS:
            return await asyncio.to_thread(self._nearest, query, depth, allowed_files)
        with _BLAS.limit(limits=1, user_api="blas"):
            return self._nearest(query, depth, allowed_files)

    def _nearest(
        self, query: Vector, depth: int, allowed_files: Collection[str] | None
    ) -> list[tuple[int, float]]:
        if self.quantised is not None and allowed_files is None:
            return self._nearest_quantised(query, depth)
        scores = self.vectors @ query
        if allowed_files is not None:
            codes = [i for i, file_id in enumerate(self.file_ids) if file_id in allowed_files]
            scores = np.where(np.isin(self.file_codes, codes), scores, -np.inf)
        depth = min(depth, len(scores))
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.seqs[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def _nearest_quantised(self, query: Vector, depth: int) -> list[tuple[int, float]]:
        assert self.quantised is not None
        first = search(
            self.quantised,
            quantise(query),
            min(len(self.seqs), depth * RERANK),
            MetricKind.IP,
            exact=True,
            threads=_THREADS,
        )
        rows = np.asarray(first.keys, dtype=np.int64)
        scores = self.vectors[rows] @ query
        best = np.argsort(-scores, kind="stable")[:depth]
        return [(int(self.seqs[rows[i]]), float(scores[i])) for i in best]


def quantise(vectors: Vector) -> npt.NDArray[np.int8]:
    """Unit vectors scaled to int8 (components of unit vectors lie in -1..1)."""
    scaled: npt.NDArray[np.int8] = np.clip(np.rint(vectors * 127.0), -127, 127).astype(np.int8)
    return scaled


@dataclass
class StoreEntry:
    version: int
    files: dict[str, StoreFile]
    dimensions: int | None
    """Of the store's embeddings (``None``: it has no chunks)."""
    matrix: StoreMatrix | None = None


@dataclass
class StoreCache:
    """Entries by vector store id, least recently used first."""

    entries: OrderedDict[str, StoreEntry] = field(default_factory=OrderedDict)

    def get(self, vector_store_id: str, version: int) -> StoreEntry | None:
        entry = self.entries.get(vector_store_id)
        if entry is None or entry.version != version:
            return None
        self.entries.move_to_end(vector_store_id)
        return entry

    def put(self, vector_store_id: str, entry: StoreEntry) -> None:
        self.entries[vector_store_id] = entry
        self.entries.move_to_end(vector_store_id)
        self._evict()

    def forget(self, vector_store_id: str) -> None:
        self.entries.pop(vector_store_id, None)

    def _evict(self) -> None:
        rows = sum(len(e.matrix.seqs) for e in self.entries.values() if e.matrix is not None)
        while rows > MAX_CACHED_ROWS and len(self.entries) > 1:
            _, oldest = self.entries.popitem(last=False)
            if oldest.matrix is not None:
                rows -= len(oldest.matrix.seqs)


def build_matrix(
    rows: list[tuple[int, str, int, bytes]],
) -> StoreMatrix:
    """A ``StoreMatrix`` from ``(seq, file_id, dimensions, embedding bytes)`` rows."""
    if not rows:
        return StoreMatrix(
            np.zeros(0, np.int64), np.zeros(0, np.int32), (), np.zeros((0, 0), np.float32)
        )
    dimensions = rows[0][2]
    if any(row[2] != dimensions for row in rows):
        raise EmbeddingMismatch("a store holds embeddings of different dimensions")
    codes: dict[str, int] = {}
    file_codes = np.fromiter(
        (codes.setdefault(row[1], len(codes)) for row in rows), np.int32, len(rows)
    )
    seqs = np.fromiter((row[0] for row in rows), np.int64, len(rows))
    vectors = np.frombuffer(b"".join(row[3] for row in rows), dtype="<f4")
    vectors = vectors.reshape(len(rows), dimensions).astype(np.float32, copy=False)
    quantised = quantise(vectors) if len(rows) >= QUANTISED_ROWS else None
    return StoreMatrix(seqs, file_codes, tuple(codes), vectors, quantised)
