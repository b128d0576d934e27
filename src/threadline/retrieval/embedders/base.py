"""The ``Embedder`` interface every embedding backend implements, and batching over it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class Embedder(Protocol):
    """Texts to vectors: ``(len(texts), dimensions)`` float32, each row L2-normalised."""

    name: str
    """Identifies the model: vectors from embedders of different names don't compare."""
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


Progress = Callable[[int, int], Awaitable[None] | None]


async def embed_in_batches(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    on_progress: Progress | None = None,
) -> npt.NDArray[np.float32]:
    """``embedder.embed(texts)`` in slices of ``batch_size``, for large files.

    After each slice ``on_progress(done, total)`` is called (and awaited when it
    returns an awaitable): the place to log progress, renew a lease, or raise to stop
    an ingestion that was cancelled. A file of thousands of chunks would otherwise be
    one call of many minutes with nothing to show for it until the end.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    out = np.empty((len(texts), embedder.dimensions), dtype=np.float32)
    for begin in range(0, len(texts), batch_size):
        batch = texts[begin : begin + batch_size]
        out[begin : begin + len(batch)] = await embedder.embed(batch)
        if on_progress is not None:
            result = on_progress(begin + len(batch), len(texts))
            if inspect.isawaitable(result):
                await result
    return out
