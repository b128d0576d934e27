"""The sentence vectors the local backend's gate and router share: kept, bounded."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from threadline.models.local.sentences import SentenceCache


class Embedder:
    """A text's vector is (its length, 1); every batch asked is recorded."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail = False

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.batches.append(list(texts))
        if self.fail:
            raise RuntimeError("no model here")
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_only_texts_not_kept_are_embedded_in_one_batch() -> None:
    embed = Embedder()
    cache = SentenceCache(embed)
    first = cache(["a", "bb", "a"])
    assert first.tolist() == [[1, 1], [2, 1], [1, 1]]
    assert cache(["ccc", "bb"]).tolist() == [[3, 1], [2, 1]]
    assert cache(["a", "ccc"]).tolist() == [[1, 1], [3, 1]]
    assert embed.batches == [["a", "bb"], ["ccc"]]


def test_the_least_recently_used_text_goes_first() -> None:
    embed = Embedder()
    cache = SentenceCache(embed, size=2)
    cache(["a"])
    cache(["bb"])
    cache(["a"])  # "a" used again: "bb" is now the oldest
    cache(["ccc"])
    cache(["a"])
    cache(["bb"])
    assert embed.batches == [["a"], ["bb"], ["ccc"], ["bb"]]


def test_a_batch_larger_than_the_cache_is_still_answered_whole() -> None:
    cache = SentenceCache(Embedder(), size=1)
    assert cache(["a", "bb", "ccc"]).tolist() == [[1, 1], [2, 1], [3, 1]]


def test_an_embedders_error_is_raised_and_nothing_of_the_batch_is_kept() -> None:
    embed = Embedder()
    cache = SentenceCache(embed)
    embed.fail = True
    with pytest.raises(RuntimeError):
        cache(["a"])
    embed.fail = False
    assert cache(["a"]).tolist() == [[1, 1]]
    assert embed.batches == [["a"], ["a"]]
