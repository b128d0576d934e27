"""Vector stores: create, retrieve, modify, delete, list, search.

A store's ``file_counts``, ``usage_bytes`` and ``status`` are read from its files'
rows whenever it is shown, so they always agree with the files; ``expires_at``
follows the ``expires_after`` policy from ``last_active_at``, which creation,
modification and each search move. An expired store reads ``status: "expired"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import SYSTEM_CLOCK, Clock, stamp
from threadline.domain.ids import new_id
from threadline.domain.pages import Page, PageParams
from threadline.errors import InvalidRequestError
from threadline.schemas.vector_store import (
    CreateVectorStoreRequest,
    ModifyVectorStoreRequest,
    SearchRequest,
    resolved_chunking,
)
from threadline.services.ingestion import Hit, IngestionWorker, Pipeline
from threadline.services.inline_stores import new_file
from threadline.services.references import References
from threadline.storage import vector_stores as store
from threadline.storage.db import Database

DAY = 86_400


def expiry(policy: Mapping[str, Any] | None, last_active_at: int) -> int | None:
    return last_active_at + int(policy["days"]) * DAY if policy else None


def shown(data: dict[str, Any], counts: store.Counts, now: int) -> dict[str, Any]:
    """The store as the API shows it at ``now``: counts, usage, status."""
    if data.get("expires_at") is not None and data["expires_at"] <= now:
        status = "expired"
    else:
        status = "in_progress" if counts.in_progress else "completed"
    return {
        **data,
        "file_counts": counts.wire(),
        "usage_bytes": counts.usage_bytes,
        "status": status,
    }


class VectorStoreService:
    def __init__(
        self,
        db: Database,
        refs: References,
        pipeline: Pipeline,
        ingestion: IngestionWorker,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.refs = refs
        self.pipeline = pipeline
        self.ingestion = ingestion
        self.clock = clock

    async def _shown(
        self, conn: AsyncConnection, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        found = await store.counts(conn, store.F.vector_store_id, [row["id"] for row in rows])
        now = stamp(self.clock)
        return [shown(row, found.get(row["id"], store.Counts()), now) for row in rows]

    async def create(self, project: str, req: CreateVectorStoreRequest) -> dict[str, Any]:
        now = stamp(self.clock)
        policy = req.expires_after.model_dump() if req.expires_after else None
        data: dict[str, Any] = {
            "id": new_id("vector_store"),
            "object": "vector_store",
            "created_at": now,
            "name": req.name,
            "description": req.description,
            "expires_after": policy,
            "expires_at": expiry(policy, now),
            "last_active_at": now,
            "metadata": req.metadata or {},
        }
        chunking = resolved_chunking(req.chunking_strategy)
        file_ids = list(dict.fromkeys(req.file_ids))
        async with self.db.write() as conn:
            await self.refs.check_files(conn, project, file_ids, "file_ids")
            await store.insert_store(conn, project, data)
            for file_id in file_ids:
                await store.insert_file(
                    conn, project, new_file(file_id, data["id"], now, chunking, None), None
                )
            [result] = await self._shown(conn, [data])
        if file_ids:
            self.ingestion.notify()
        return result

    async def retrieve(self, project: str, store_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            data = await store.stores.get(conn, project, store_id)
            [result] = await self._shown(conn, [data])
        return result

    async def list(self, project: str, params: PageParams) -> Page:
        async with self.db.read() as conn:
            page = await store.stores.page(conn, project, params)
            return Page(await self._shown(conn, page.data), page.has_more)

    async def modify(
        self, project: str, store_id: str, req: ModifyVectorStoreRequest
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            data = await store.stores.get(conn, project, store_id)
            fields = req.model_fields_set
            if "name" in fields:
                data["name"] = req.name
            if "metadata" in fields:
                data["metadata"] = req.metadata or {}
            now = stamp(self.clock)
            data["last_active_at"] = now
            if "expires_after" in fields:
                data["expires_after"] = (
                    req.expires_after.model_dump() if req.expires_after else None
                )
            data["expires_at"] = expiry(data.get("expires_after"), now)
            await store.save_store(conn, project, data)
            [result] = await self._shown(conn, [data])
        return result

    async def delete(self, project: str, store_id: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            await store.stores.delete(conn, project, store_id)
        await self.pipeline.delete_store(store_id)
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    async def search(self, project: str, store_id: str, req: SearchRequest) -> dict[str, Any]:
        async with self.db.write() as conn:
            data = await store.stores.get(conn, project, store_id)
            now = stamp(self.clock)
            if data.get("expires_at") is not None and data["expires_at"] <= now:
                raise InvalidRequestError(
                    f"Vector store {store_id} has expired and can no longer be searched.",
                    param="vector_store_id",
                    code="vector_store_expired",
                )
            await store.touch_stores(conn, project, [store_id], now)
        queries = req.queries()
        options = req.ranking_options
        filters = req.filters.model_dump() if req.filters is not None else None
        hits = await search_all(
            self.pipeline,
            [store_id],
            queries,
            max_results=req.max_num_results,
            filters=filters,
            score_threshold=options.score_threshold if options else 0.0,
            ranker=options.ranker if options else "auto",
        )
        return {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [
                {
                    "file_id": hit.file_id,
                    "filename": hit.filename,
                    "score": min(1.0, max(0.0, hit.score)),
                    "attributes": dict(hit.attributes),
                    "content": [{"type": "text", "text": hit.text}],
                }
                for hit in hits
            ],
            "has_more": False,
            "next_page": None,
        }


async def search_all(
    pipeline: Pipeline, store_ids: Sequence[str], queries: Sequence[str], **options: Any
) -> list[Hit]:
    """Each query's hits, merged: a chunk found by several keeps its best score."""
    best: dict[tuple[str, str], Hit] = {}
    for query in queries:
        for hit in await pipeline.search(store_ids, query, **options):
            key = (hit.file_id, hit.text)
            if key not in best or hit.score > best[key].score:
                best[key] = hit
    ranked = sorted(best.values(), key=lambda hit: hit.score, reverse=True)
    return ranked[: options["max_results"]]
