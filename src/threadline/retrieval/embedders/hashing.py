"""A deterministic embedder for tests: hashed word and character-trigram counts.

No model and no randomness: the same text always gives the same vector, in any
process (``blake2b``, not Python's salted ``hash``), and texts that share words or
word pieces share dimensions, so their cosine similarity is higher. It ranks by
vocabulary overlap only; it knows no synonyms.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from threadline.retrieval.embedders.bert import Array, normalise

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    def __init__(self, dimensions: int = 256) -> None:
        if dimensions < 8:
            raise ValueError("dimensions must be at least 8")
        self.dimensions = dimensions
        self.name = f"hash-{dimensions}"

    async def embed(self, texts: Sequence[str]) -> Array:
        return self.embed_sync(texts)

    def embed_sync(self, texts: Sequence[str]) -> Array:
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, count in _features(text).items():
                slot, sign = self._slot(feature)
                matrix[row, slot] += sign * (1.0 + math.log(count))
        return normalise(matrix)

    def _slot(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dimensions, (1.0 if value >> 63 else -1.0)


def _features(text: str) -> Counter[str]:
    """Whole words (weighted double) and the character trigrams of each word."""
    features: Counter[str] = Counter()
    for word in _WORD.findall(text.lower()):
        features["w:" + word] += 2
        padded = f"<{word}>"
        features.update("c:" + padded[i : i + 3] for i in range(len(padded) - 2))
    if not features:
        features["empty"] = 1  # still a unit vector
    return features
