"""What the chunk index takes and gives: chunks in, hits out, and its interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from threadline.retrieval.filters import Filter

Vector: TypeAlias = npt.NDArray[np.float32]
AttributeValue: TypeAlias = str | float | bool
SearchMode: TypeAlias = Literal["hybrid", "dense", "lexical"]

MAX_RESULTS = 50
"""``max_num_results`` is 1-50 in the spec."""


@dataclass(frozen=True)
class IndexedChunk:
    file_id: str
    filename: str
    chunk_index: int
    text: str
    embedding: Vector
    """float32, L2-normalised."""
    attributes: Mapping[str, AttributeValue]
    """The file's attributes (the same for every chunk of a file)."""


@dataclass(frozen=True)
class SearchHit:
    vector_store_id: str
    file_id: str
    filename: str
    chunk_index: int
    text: str
    score: float
    """0..1, higher is better: the reciprocal-rank fusion of the mode's rankings,
    divided by its best possible value (first in every ranking)."""
    attributes: Mapping[str, AttributeValue]


class ChunkIndex(Protocol):
    """The chunks of each vector store's files, searchable by meaning and by words."""

    async def add(self, vector_store_id: str, chunks: Sequence[IndexedChunk]) -> None:
        """Index ``chunks``; a chunk already indexed (same file and ``chunk_index``)
        is kept as it was, so that ingestion may safely be resumed."""

    async def delete_file(self, vector_store_id: str, file_id: str) -> None:
        """Forget a file's chunks in one store (a no-op when it has none)."""

    async def delete_store(self, vector_store_id: str) -> None:
        """Forget every chunk of a store."""

    async def set_attributes(
        self, vector_store_id: str, file_id: str, attributes: Mapping[str, AttributeValue]
    ) -> None:
        """Replace the attributes of a file of a store (a no-op when it has none)."""

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
        """The best chunks of the stores for ``query``, best first, at most
        ``max_results``, only those scoring at least ``score_threshold``, only of
        files whose attributes pass ``filters``."""
        ...
