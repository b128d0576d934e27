"""The vector store service as a library, on each engine, with a clock the test
moves: expiry from ``last_active_at``, and searches moving it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.memory_pipeline import MemoryPipeline
from threadline.errors import InvalidRequestError
from threadline.schemas.vector_store import CreateVectorStoreRequest, SearchRequest
from threadline.services.ingestion import Hit, IngestionWorker
from threadline.services.references import References
from threadline.services.vector_stores import VectorStoreService
from threadline.storage.blobs import LocalBlobStore
from threadline.storage.db import Database

PROJECT = "proj_vs"
DAY = 86_400


class ManualClock:
    def __init__(self) -> None:
        self.at = float(int(time.time()))

    def time(self) -> float:
        return self.at


class RecordingPipeline(MemoryPipeline):
    """The placeholder, remembering the searches it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.searches: list[dict[str, Any]] = []

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
        self.searches.append(
            {
                "stores": list(vector_store_ids),
                "query": query,
                "max_results": max_results,
                "filters": filters,
                "score_threshold": score_threshold,
                "ranker": ranker,
            }
        )
        return [Hit("file-1", "a.txt", f"about {query}", 0.5, {})]


def _service(
    db: Database, tmp_path: Path, clock: ManualClock
) -> tuple[VectorStoreService, RecordingPipeline]:
    pipeline = RecordingPipeline()
    worker = IngestionWorker(
        db,
        LocalBlobStore(tmp_path),
        pipeline,
        concurrency=1,
        lease_seconds=30,
        sweep_interval=60,
        clock=clock,
    )
    return VectorStoreService(db, References(), pipeline, worker, clock), pipeline


async def test_a_store_expires_days_after_its_last_activity(db: Database, tmp_path: Path) -> None:
    clock = ManualClock()
    service, _ = _service(db, tmp_path, clock)
    req = CreateVectorStoreRequest.model_validate(
        {"name": "short", "expires_after": {"anchor": "last_active_at", "days": 2}}
    )
    created = await service.create(PROJECT, req)
    assert created["expires_at"] == int(clock.at) + 2 * DAY

    clock.at += DAY
    search = SearchRequest.model_validate({"query": "anything"})
    await service.search(PROJECT, created["id"], search)  # activity: the expiry moves
    touched = await service.retrieve(PROJECT, created["id"])
    assert touched["last_active_at"] == int(clock.at)
    assert touched["expires_at"] == int(clock.at) + 2 * DAY
    assert touched["status"] == "completed"

    clock.at += 2 * DAY
    expired = await service.retrieve(PROJECT, created["id"])
    assert expired["status"] == "expired"
    with pytest.raises(InvalidRequestError) as caught:
        await service.search(PROJECT, created["id"], search)
    assert caught.value.code == "vector_store_expired"


async def test_search_passes_options_and_merges_queries(db: Database, tmp_path: Path) -> None:
    clock = ManualClock()
    service, pipeline = _service(db, tmp_path, clock)
    created = await service.create(PROJECT, CreateVectorStoreRequest.model_validate({}))
    filters = {"type": "eq", "key": "kind", "value": "fruit"}
    search = SearchRequest.model_validate(
        {
            "query": ["one", "two"],
            "max_num_results": 1,
            "filters": filters,
            "ranking_options": {"ranker": "none", "score_threshold": 0.25},
        }
    )
    page = await service.search(PROJECT, created["id"], search)
    assert [s["query"] for s in pipeline.searches] == ["one", "two"]
    assert pipeline.searches[0] == {
        "stores": [created["id"]],
        "query": "one",
        "max_results": 1,
        "filters": filters,
        "score_threshold": 0.25,
        "ranker": "none",
    }
    assert page["search_query"] == ["one", "two"]
    assert len(page["data"]) == 1
    assert page["data"][0]["content"] == [{"type": "text", "text": "about one"}]
