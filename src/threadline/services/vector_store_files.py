"""The files of vector stores and their batches: add (ingestion starts in the
background), retrieve, list, update attributes, remove, read the parsed content;
batches: create, retrieve, cancel, list their files."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import SYSTEM_CLOCK, Clock, stamp
from threadline.domain.ids import new_id
from threadline.domain.pages import Page, PageParams
from threadline.errors import InvalidRequestError
from threadline.schemas.vector_store import (
    CreateFileBatchRequest,
    CreateVectorStoreFileRequest,
    resolved_chunking,
)
from threadline.services.ingestion import Attributes, IngestionWorker, Pipeline
from threadline.services.inline_stores import new_file
from threadline.services.references import References
from threadline.storage import vector_stores as store
from threadline.storage.db import Database


def batch_shown(data: dict[str, Any], cancelled: bool, counts: store.Counts) -> dict[str, Any]:
    if cancelled:
        status = "cancelled"
    elif counts.in_progress:
        status = "in_progress"
    else:
        status = "completed"
    shown = {key: value for key, value in data.items() if key != "cancelled"}
    return {**shown, "status": status, "file_counts": counts.wire()}


class VectorStoreFileService:
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

    async def _add(
        self,
        conn: AsyncConnection,
        project: str,
        store_id: str,
        entries: list[CreateVectorStoreFileRequest],
        batch_id: str | None,
        param: str,
    ) -> list[dict[str, Any]]:
        await self.refs.check_files(conn, project, [e.file_id for e in entries], param)
        present = await store.existing_store_file_ids(conn, store_id, [e.file_id for e in entries])
        now = stamp(self.clock)
        added: list[dict[str, Any]] = []
        seen: set[str] = set()
        for entry in entries:
            if entry.file_id in seen:
                continue
            seen.add(entry.file_id)
            chunking = resolved_chunking(entry.chunking_strategy)
            data = new_file(entry.file_id, store_id, now, chunking, entry.attributes)
            if entry.file_id in present:
                # Added again: ingested again, with the new chunking and attributes
                # (what the index held for it is replaced when it is indexed anew).
                await store.delete_file(conn, project, store_id, entry.file_id)
            await store.insert_file(conn, project, data, batch_id)
            added.append(data)
        await store.touch_stores(conn, project, [store_id], now)
        return added

    async def create(
        self, project: str, store_id: str, req: CreateVectorStoreFileRequest
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            await store.stores.get(conn, project, store_id)
            [data] = await self._add(conn, project, store_id, [req], None, "file_id")
        self.ingestion.notify()
        return data

    async def retrieve(self, project: str, store_id: str, file_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            await store.stores.get(conn, project, store_id)
            return await store.files.get(conn, project, file_id, vector_store_id=store_id)

    async def list(
        self,
        project: str,
        store_id: str,
        params: PageParams,
        status: str | None,
        batch_id: str | None = None,
    ) -> Page:
        scope: dict[str, Any] = {"vector_store_id": store_id}
        if status is not None:
            scope["status"] = status
        if batch_id is not None:
            scope["batch_id"] = batch_id
        async with self.db.read() as conn:
            await store.stores.get(conn, project, store_id)
            if batch_id is not None:
                await store.batches.get(conn, project, batch_id, vector_store_id=store_id)
            return await store.files.page(conn, project, params, **scope)

    async def update(
        self, project: str, store_id: str, file_id: str, attributes: Attributes | None
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            await store.stores.get(conn, project, store_id)
            data = await store.files.get(conn, project, file_id, vector_store_id=store_id)
            data["attributes"] = dict(attributes) if attributes is not None else {}
            await store.save_file(conn, data)
        await self.pipeline.set_attributes(store_id, file_id, data["attributes"])
        return data

    async def delete(self, project: str, store_id: str, file_id: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            await store.stores.get(conn, project, store_id)
            await store.delete_file(conn, project, store_id, file_id)
        await self.pipeline.delete_file(store_id, file_id)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    async def content(self, project: str, store_id: str, file_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            await store.stores.get(conn, project, store_id)
            await store.files.get(conn, project, file_id, vector_store_id=store_id)
            text = await store.file_content(conn, store_id, file_id)
        return {
            "object": "vector_store.file_content.page",
            "data": [] if text is None else [{"type": "text", "text": text}],
            "has_more": False,
            "next_page": None,
        }

    # --- batches -------------------------------------------------------------------

    async def create_batch(
        self, project: str, store_id: str, req: CreateFileBatchRequest
    ) -> dict[str, Any]:
        param = "files" if req.files is not None else "file_ids"
        data: dict[str, Any] = {
            "id": new_id("vector_store_file_batch"),
            "object": "vector_store.files_batch",
            "created_at": stamp(self.clock),
            "vector_store_id": store_id,
        }
        async with self.db.write() as conn:
            await store.stores.get(conn, project, store_id)
            await store.batches.insert(conn, project, data, vector_store_id=store_id)
            await self._add(conn, project, store_id, req.entries(), data["id"], param)
            result = await self._batch(conn, data, cancelled=False)
        self.ingestion.notify()
        return result

    async def _batch(
        self, conn: AsyncConnection, data: dict[str, Any], cancelled: bool
    ) -> dict[str, Any]:
        found = await store.counts(conn, store.F.batch_id, [data["id"]])
        return batch_shown(data, cancelled, found[data["id"]])

    async def retrieve_batch(self, project: str, store_id: str, batch_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            await store.stores.get(conn, project, store_id)
            data = await store.batches.get(conn, project, batch_id, vector_store_id=store_id)
            return await self._batch(conn, data, bool(data.get("cancelled")))

    async def cancel_batch(self, project: str, store_id: str, batch_id: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            await store.stores.get(conn, project, store_id)
            data = await store.batches.get(conn, project, batch_id, vector_store_id=store_id)
            pending = await store.in_progress_of_batch(conn, batch_id)
            if not pending and not data.get("cancelled"):
                raise InvalidRequestError(
                    f"Batch {batch_id} has no files in progress; it cannot be cancelled.",
                    param="batch_id",
                    code="invalid_state",
                )
            for file in pending:
                file["status"] = "cancelled"
                await store.save_file(conn, file, seen="in_progress")
            data["cancelled"] = True
            await store.batches.replace(conn, project, data, cancelled=True)
            result = await self._batch(conn, data, cancelled=True)
        for file in pending:
            await self.pipeline.delete_file(store_id, file["id"])
        return result
