"""The ``Embedder`` interface every embedding backend implements."""

from __future__ import annotations

from collections.abc import Sequence
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
