"""The sentence embedder the local backend's tool-need gate and tool router share.

Both judge a first call from the request's all-MiniLM-L6-v2 vector (the embedder the
server ships for file_search), and the router also from each offered function's:
``SentenceCache`` keeps recent texts' vectors, so a request is embedded once for both
and an assistant's functions once for all its runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Embed = Callable[[list[str]], npt.NDArray[np.float32]]
"""Unit-length sentence vectors of texts, in the embedder the gate was trained on."""

CACHED_TEXTS = 1024
"""Texts whose vectors are kept (384 floats each: about 1.5 MB in all)."""


class SentenceCache:
    """``embed`` with the vectors of the last ``size`` texts kept; an ``Embed`` itself.

    Only the texts not kept are embedded, in one batch; an embedder's error is
    raised to the caller and nothing of that batch is kept. Safe across threads."""

    def __init__(self, embed: Embed, size: int = CACHED_TEXTS) -> None:
        self._embed = embed
        self.size = size
        self._vectors: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        # Held while embedding: a few milliseconds, and no text is embedded twice
        # or evicted between being found and being read.
        with self._lock:
            missing = [text for text in dict.fromkeys(texts) if text not in self._vectors]
            if missing:
                self._vectors.update(zip(missing, self._embed(missing), strict=True))
            vectors = np.stack([self._vectors[text] for text in texts])
            for text in texts:
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return vectors
