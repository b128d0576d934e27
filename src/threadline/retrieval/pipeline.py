"""What vector store ingestion and search run on: the ``Pipeline`` seam, and
``RetrievalPipeline``, the retrieval library behind it (parsers, token chunking,
an embedder, the hybrid chunk index).

Parsing, chunking and the local embedder's numpy work run in threads: the event
loop keeps serving streams and polls while a large file is ingested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from threadline.errors import InvalidRequestError
from threadline.retrieval import parsers
from threadline.retrieval.chunking import ChunkingStrategy, Tokenizer, chunk
from threadline.retrieval.embedders import Embedder
from threadline.retrieval.errors import InvalidFile, InvalidFilter, UnsupportedFile
from threadline.retrieval.filters import parse_filter
from threadline.retrieval.index import ChunkIndex, IndexedChunk

Attributes = Mapping[str, str | float | bool]


class FileRejected(Exception):
    """A pipeline cannot take this file: its format is not supported
    (``unsupported_file``) or it is unreadable (``invalid_file``)."""

    def __init__(self, code: Literal["unsupported_file", "invalid_file"], message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk of a file, scored 0..1 (higher is better)."""

    file_id: str
    filename: str
    text: str
    score: float
    attributes: Attributes


class Pipeline(Protocol):
    """What ingestion and search run on (the retrieval library, in production)."""

    async def parse(self, data: bytes, filename: str) -> str:
        """The file's text; raises ``FileRejected``."""
        ...

    async def chunk(self, text: str, max_tokens: int, overlap_tokens: int) -> list[str]: ...

    async def embed(self, texts: Sequence[str]) -> Any:
        """One L2-normalised row per text."""
        ...

    async def index(
        self,
        vector_store_id: str,
        file_id: str,
        filename: str,
        chunks: Sequence[str],
        embeddings: Any,
        attributes: Attributes,
    ) -> None:
        """Hold ``chunks`` for the file, replacing whatever it held for it before."""
        ...

    async def delete_file(self, vector_store_id: str, file_id: str) -> None: ...

    async def delete_store(self, vector_store_id: str) -> None: ...

    async def set_attributes(
        self, vector_store_id: str, file_id: str, attributes: Attributes
    ) -> None: ...

    async def search(
        self,
        vector_store_ids: Sequence[str],
        query: str,
        *,
        max_results: int,
        filters: Mapping[str, Any] | None,
        score_threshold: float,
        ranker: str,
    ) -> list[Hit]:
        """Best first; raises ``InvalidRequestError`` (param ``filters``) for a
        filter it cannot apply."""
        ...


class RetrievalPipeline:
    """The retrieval library as ingestion and search use it."""

    def __init__(self, index: ChunkIndex, embedder: Embedder, tokenizer: Tokenizer) -> None:
        self._index = index
        self.embedder = embedder
        self.tokenizer = tokenizer

    async def parse(self, data: bytes, filename: str) -> str:
        try:
            parsed = await asyncio.to_thread(parsers.parse, data, filename)
        except UnsupportedFile as exc:
            raise FileRejected("unsupported_file", exc.message) from exc
        except InvalidFile as exc:
            raise FileRejected("invalid_file", exc.message) from exc
        return parsed.text

    async def chunk(self, text: str, max_tokens: int, overlap_tokens: int) -> list[str]:
        strategy = ChunkingStrategy.static(max_tokens, overlap_tokens)
        chunks = await asyncio.to_thread(chunk, text, strategy, self.tokenizer)
        return [c.text for c in chunks]

    async def embed(self, texts: Sequence[str]) -> Any:
        return await self.embedder.embed(texts)

    async def index(
        self,
        vector_store_id: str,
        file_id: str,
        filename: str,
        chunks: Sequence[str],
        embeddings: Any,
        attributes: Attributes,
    ) -> None:
        vectors = np.asarray(embeddings, dtype=np.float32)
        await self._index.delete_file(vector_store_id, file_id)
        await self._index.add(
            vector_store_id,
            [
                IndexedChunk(file_id, filename, position, text, vectors[position], attributes)
                for position, text in enumerate(chunks)
            ],
        )

    async def delete_file(self, vector_store_id: str, file_id: str) -> None:
        await self._index.delete_file(vector_store_id, file_id)

    async def delete_store(self, vector_store_id: str) -> None:
        await self._index.delete_store(vector_store_id)

    async def set_attributes(
        self, vector_store_id: str, file_id: str, attributes: Attributes
    ) -> None:
        await self._index.set_attributes(vector_store_id, file_id, attributes)

    async def search(
        self,
        vector_store_ids: Sequence[str],
        query: str,
        *,
        max_results: int,
        filters: Mapping[str, Any] | None,
        score_threshold: float,
        ranker: str,
    ) -> list[Hit]:
        try:
            parsed = None if filters is None else parse_filter(dict(filters))
        except InvalidFilter as exc:
            raise InvalidRequestError(exc.message, param=exc.param, code="invalid_value") from exc
        [vector] = await self.embedder.embed([query])
        found = await self._index.search(
            vector_store_ids,
            query=query,
            query_embedding=vector,
            max_results=max_results,
            filters=parsed,
            score_threshold=score_threshold,
        )
        return [Hit(h.file_id, h.filename, h.text, h.score, h.attributes) for h in found]
