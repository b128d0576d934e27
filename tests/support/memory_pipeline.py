"""An in-memory ``Pipeline`` for tests that need to hold ingestion at a chosen
point (subclasses gate or stall ``parse``) or record what search was asked.

It takes UTF-8 text files only, chunks on whitespace (a word stands for a token),
embeds nothing, and keeps chunks in this process's memory, scored by the share of
query words they contain; it applies no filters. The server's own pipeline is
``threadline.retrieval.pipeline.RetrievalPipeline``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from threadline.retrieval.pipeline import Attributes, FileRejected, Hit

TEXT_EXTENSIONS = frozenset(
    {
        *("txt", "md", "markdown", "html", "htm", "json", "csv", "tsv", "xml", "yaml", "yml"),
        *("py", "js", "ts", "java", "c", "cpp", "h", "go", "rs", "rb", "php", "sh", "css"),
        *("toml", "ini", "tex", "rst"),
    }
)
_WORD = re.compile(r"\w+")


@dataclass
class _Chunk:
    file_id: str
    filename: str
    text: str
    words: frozenset[str]
    attributes: Attributes


class MemoryPipeline:
    def __init__(self) -> None:
        self._stores: dict[str, dict[str, list[_Chunk]]] = {}

    async def parse(self, data: bytes, filename: str) -> str:
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if extension not in TEXT_EXTENSIONS:
            raise FileRejected(
                "unsupported_file", f"Files of type '.{extension}' are not supported."
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise FileRejected("invalid_file", f"{filename} is not valid UTF-8 text.") from None

    async def chunk(self, text: str, max_tokens: int, overlap_tokens: int) -> list[str]:
        words = text.split()
        step = max(1, max_tokens - overlap_tokens)
        return [
            " ".join(words[start : start + max_tokens])
            for start in range(0, len(words), step)
            if start == 0 or start + overlap_tokens < len(words)
        ]

    async def embed(self, texts: Sequence[str]) -> Any:
        return [None] * len(texts)

    async def index(
        self,
        vector_store_id: str,
        file_id: str,
        filename: str,
        chunks: Sequence[str],
        embeddings: Any,
        attributes: Attributes,
    ) -> None:
        self._stores.setdefault(vector_store_id, {})[file_id] = [
            _Chunk(file_id, filename, text, _words(text), dict(attributes)) for text in chunks
        ]

    async def delete_file(self, vector_store_id: str, file_id: str) -> None:
        self._stores.get(vector_store_id, {}).pop(file_id, None)

    async def delete_store(self, vector_store_id: str) -> None:
        self._stores.pop(vector_store_id, None)

    async def set_attributes(
        self, vector_store_id: str, file_id: str, attributes: Attributes
    ) -> None:
        for chunk in self._stores.get(vector_store_id, {}).get(file_id, []):
            chunk.attributes = dict(attributes)

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
        wanted = _words(query)
        hits: list[Hit] = []
        for store_id in vector_store_ids:
            for chunks in self._stores.get(store_id, {}).values():
                for chunk in chunks:
                    score = len(wanted & chunk.words) / len(wanted) if wanted else 0.0
                    if score > 0 and score >= score_threshold:
                        hits.append(
                            Hit(chunk.file_id, chunk.filename, chunk.text, score, chunk.attributes)
                        )
        hits.sort(key=lambda hit: hit.score, reverse=True)
        return hits[:max_results]


def _words(text: str) -> frozenset[str]:
    return frozenset(word.lower() for word in _WORD.findall(text))
