"""Messages of a thread: create, retrieve, modify, delete, list."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.domain.pages import Page, PageParams
from threadline.errors import ThreadBusyError
from threadline.schemas.message import (
    CreateMessageRequest,
    ImageFilePart,
    ModifyMessageRequest,
    content_parts,
)
from threadline.services.references import References
from threadline.storage import objects
from threadline.storage.db import Database

repo = objects.messages
thread_repo = objects.threads


def new_message(thread_id: str, req: CreateMessageRequest) -> dict[str, Any]:
    """A user- or caller-made message, ready to store."""
    return {
        "id": new_id("message"),
        "object": "thread.message",
        "created_at": now(),
        "thread_id": thread_id,
        "status": "completed",
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
        "role": req.role,
        "content": content_parts(req.content),
        "assistant_id": None,
        "run_id": None,
        "attachments": [a.model_dump() for a in req.attachments or []],
        "metadata": req.metadata or {},
    }


async def check_message_files(
    refs: References, conn: AsyncConnection, project: str, req: CreateMessageRequest, param: str
) -> None:
    await refs.check_files(
        conn, project, (a.file_id for a in req.attachments or []), f"{param}attachments"
    )
    if not isinstance(req.content, str):
        images = (p.image_file.file_id for p in req.content if isinstance(p, ImageFilePart))
        await refs.check_files(conn, project, images, f"{param}content")


async def ensure_thread_idle(conn: AsyncConnection, thread_id: str) -> None:
    run_id = await objects.active_run_id(conn, thread_id)
    if run_id is not None:
        raise ThreadBusyError.for_thread(thread_id, run_id)


class MessageService:
    def __init__(self, db: Database, refs: References) -> None:
        self.db = db
        self.refs = refs

    async def create(
        self, project: str, thread_id: str, req: CreateMessageRequest
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            thread = await thread_repo.get(conn, project, thread_id)
            await check_message_files(self.refs, conn, project, req, "")
            await ensure_thread_idle(conn, thread_id)
            if await self.refs.attach(conn, project, thread, req.attachments):
                await thread_repo.replace(conn, project, thread)
            data = new_message(thread_id, req)
            return await repo.insert(conn, project, data, thread_id=thread_id)

    async def retrieve(self, project: str, thread_id: str, message_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            await thread_repo.get(conn, project, thread_id)
            return await repo.get(conn, project, message_id, thread_id=thread_id)

    async def modify(
        self, project: str, thread_id: str, message_id: str, req: ModifyMessageRequest
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            await thread_repo.get(conn, project, thread_id)
            data = await repo.get(conn, project, message_id, thread_id=thread_id)
            if "metadata" in req.model_fields_set:
                data["metadata"] = req.metadata or {}
            return await repo.replace(conn, project, data)

    async def delete(self, project: str, thread_id: str, message_id: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            await thread_repo.get(conn, project, thread_id)
            await repo.delete(conn, project, message_id, thread_id=thread_id)
        return {"id": message_id, "object": "thread.message.deleted", "deleted": True}

    async def list(
        self, project: str, thread_id: str, params: PageParams, run_id: str | None = None
    ) -> Page:
        scope: dict[str, Any] = {"thread_id": thread_id}
        if run_id is not None:
            scope["run_id"] = run_id
        async with self.db.read() as conn:
            await thread_repo.get(conn, project, thread_id)
            return await repo.page(conn, project, params, **scope)
