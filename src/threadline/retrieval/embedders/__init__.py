"""Embedders: the ``Embedder`` interface, its three implementations and the factory.

- ``LocalEmbedder``: all-MiniLM-L6-v2 run with numpy, offline, the default;
- ``OpenAIEmbedder``: any OpenAI-compatible ``/v1/embeddings`` endpoint;
- ``HashEmbedder``: deterministic vectors for tests.
"""

from __future__ import annotations

from threadline.retrieval.embedders.base import Embedder, Progress, embed_in_batches
from threadline.retrieval.embedders.hashing import HashEmbedder
from threadline.retrieval.embedders.local import LocalEmbedder
from threadline.retrieval.embedders.openai_compat import OpenAIEmbedder
from threadline.settings import Settings

__all__ = [
    "Embedder",
    "HashEmbedder",
    "LocalEmbedder",
    "OpenAIEmbedder",
    "Progress",
    "embed_in_batches",
    "make_embedder",
]


def make_embedder(settings: Settings) -> Embedder:
    """The embedder ``THREADLINE_EMBEDDER`` names, configured from ``settings``."""
    if settings.embedder == "hash":
        return HashEmbedder(settings.embeddings_dimensions or 256)
    if settings.embedder == "openai":
        return OpenAIEmbedder(
            model=settings.embeddings_model,
            base_url=settings.embeddings_base_url or settings.openai_base_url,
            api_key=settings.embeddings_api_key or settings.openai_api_key,
            dimensions=settings.embeddings_dimensions,
            max_retries=settings.openai_max_retries,
        )
    return LocalEmbedder(
        threads=settings.embeddings_threads or None, windows=settings.embeddings_windows
    )
