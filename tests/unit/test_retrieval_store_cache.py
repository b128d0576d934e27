"""The in-memory side of dense search: a store's matrix, its nearest rows, the cache."""

from __future__ import annotations

import numpy as np
import pytest

from threadline.retrieval.errors import EmbeddingMismatch
from threadline.retrieval.index import store_cache
from threadline.retrieval.index.store_cache import (
    StoreCache,
    StoreEntry,
    build_matrix,
)


def unit(*values: float) -> np.ndarray:
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


ROWS = [
    (10, "file_a", 3, unit(1, 0, 0).tobytes()),
    (11, "file_a", 3, unit(1, 1, 0).tobytes()),
    (12, "file_b", 3, unit(0, 1, 0).tobytes()),
    (13, "file_c", 3, unit(0, 0, 1).tobytes()),
]


async def test_nearest_rows_by_cosine_best_first() -> None:
    matrix = build_matrix(ROWS)
    found = await matrix.nearest(unit(1, 0.1, 0), 3, None)
    assert [seq for seq, _ in found] == [10, 11, 12]
    assert found[0][1] == pytest.approx(float(unit(1, 0, 0) @ unit(1, 0.1, 0)))
    assert [seq for seq, _ in await matrix.nearest(unit(1, 0, 0), 10, None)][:2] == [10, 11]


async def test_nearest_only_among_allowed_files() -> None:
    matrix = build_matrix(ROWS)
    found = await matrix.nearest(unit(1, 0, 0), 10, {"file_b", "file_c"})
    assert sorted(seq for seq, _ in found) == [12, 13]
    assert await matrix.nearest(unit(1, 0, 0), 10, set()) == []


async def test_large_matrices_are_searched_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_cache, "OFF_LOOP_ROWS", 2)
    found = await build_matrix(ROWS).nearest(unit(0, 0, 1), 1, None)
    assert [seq for seq, _ in found] == [13]


async def test_sizes_must_agree() -> None:
    with pytest.raises(EmbeddingMismatch):
        build_matrix([*ROWS, (14, "file_d", 2, unit(1, 0).tobytes())])
    with pytest.raises(EmbeddingMismatch):
        await build_matrix(ROWS).nearest(unit(1, 0), 1, None)
    assert await build_matrix([]).nearest(unit(1, 0, 0), 5, None) == []


def test_cache_entries_are_per_version_and_evicted_oldest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_cache, "MAX_CACHED_ROWS", 6)
    cache = StoreCache()
    first = StoreEntry(1, {}, 3, build_matrix(ROWS))
    cache.put("vs_1", first)
    assert cache.get("vs_1", 1) is first
    assert cache.get("vs_1", 2) is None  # the store changed since
    cache.put("vs_2", StoreEntry(5, {}, 3, build_matrix(ROWS)))  # 8 rows > 6
    assert cache.get("vs_1", 1) is None
    assert cache.get("vs_2", 5) is not None
    cache.forget("vs_2")
    assert cache.get("vs_2", 5) is None


async def test_large_stores_rank_by_int8_then_rerank_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_cache, "QUANTISED_ROWS", 1000)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    matrix = build_matrix([(i, f"file_{i % 7}", 64, v.tobytes()) for i, v in enumerate(vectors)])
    assert matrix.quantised is not None
    for query in vectors[:20] + 0.3 * rng.standard_normal((20, 64)).astype(np.float32):
        query /= np.linalg.norm(query)
        exact = np.argsort(-(vectors @ query))[:10]
        found = await matrix.nearest(query, 10, None)
        assert [seq for seq, _ in found] == exact.tolist()
        assert [score for _, score in found] == pytest.approx((vectors @ query)[exact].tolist())
    # filtered searches take the exact path
    found = await matrix.nearest(vectors[0], 5, {"file_0"})
    assert found[0][0] == 0
    assert all(seq % 7 == 0 for seq, _ in found)
