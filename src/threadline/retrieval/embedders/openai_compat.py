"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM,
Ollama, llama.cpp server, LiteLLM...), through the official SDK.

Inputs go in batches of at most ``MAX_BATCH`` (OpenAI's limit per request); the SDK
retries 429 and 5xx with backoff. Rows come back in input order (the response's
``index`` decides, not its order), are checked to be ``dimensions`` wide, and are
L2-normalised (OpenAI's already are; other servers' may not be).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx2
import numpy as np
import openai
from openai import AsyncOpenAI

from threadline.retrieval.embedders.bert import Array, normalise
from threadline.retrieval.errors import EmbedderError

MAX_BATCH = 2048

KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str,
        dimensions: int | None = None,
        max_retries: int = 3,
        timeout_seconds: float = 60.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        known = KNOWN_DIMENSIONS.get(model)
        if dimensions is None and known is None:
            raise EmbedderError(
                f"the width of {model!r}'s vectors is not known: set "
                "THREADLINE_EMBEDDINGS_DIMENSIONS to it"
            )
        self.model = model
        self.dimensions = dimensions if dimensions is not None else int(known or 0)
        # Ask for a shortened vector only when it differs from the model's own width
        # (text-embedding-3 supports it; other servers may reject the parameter).
        self._request_dimensions = dimensions if known and dimensions != known else None
        self.name = f"openai:{model}:{self.dimensions}"
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=max_retries,
            timeout=timeout_seconds,
            http_client=http_client,
        )

    async def embed(self, texts: Sequence[str]) -> Array:
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for begin in range(0, len(texts), MAX_BATCH):
            batch = list(texts[begin : begin + MAX_BATCH])
            out[begin : begin + len(batch)] = await self._embed_batch(batch)
        return normalise(out)

    async def _embed_batch(self, batch: list[str]) -> Array:
        # An empty string is refused by OpenAI; it has no meaning to embed anyway.
        inputs = [text if text.strip() else " " for text in batch]
        try:
            if self._request_dimensions is not None:
                response = await self._client.embeddings.create(
                    model=self.model,
                    input=inputs,
                    encoding_format="float",
                    dimensions=self._request_dimensions,
                )
            else:
                response = await self._client.embeddings.create(
                    model=self.model, input=inputs, encoding_format="float"
                )
        except openai.OpenAIError as exc:
            raise EmbedderError(f"the embeddings endpoint failed: {exc}") from exc
        rows = np.full((len(batch), self.dimensions), np.nan, dtype=np.float32)
        if len(response.data) != len(batch):
            raise EmbedderError(
                f"the embeddings endpoint returned {len(response.data)} vectors "
                f"for {len(batch)} inputs"
            )
        for item in response.data:
            if not 0 <= item.index < len(batch) or len(item.embedding) != self.dimensions:
                raise EmbedderError(
                    f"the embeddings endpoint returned a vector of width "
                    f"{len(item.embedding)} at index {item.index}; expected width "
                    f"{self.dimensions} for {len(batch)} inputs"
                )
            rows[item.index] = item.embedding
        if np.isnan(rows).any():
            raise EmbedderError("the embeddings endpoint skipped some inputs")
        return rows

    async def aclose(self) -> None:
        await self._client.close()
