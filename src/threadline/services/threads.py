"""Threads: create (with initial messages), retrieve, modify, delete, list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.domain.pages import Page, PageParams
from threadline.schemas.thread import CreateThreadRequest, ModifyThreadRequest
from threadline.services import messages
from threadline.services.references import References
from threadline.storage import objects
from threadline.storage.db import Database

repo = objects.threads


class ThreadService:
    def __init__(self, db: Database, refs: References) -> None:
        self.db = db
        self.refs = refs
        self.on_delete: Callable[[str], Awaitable[None]] | None = None
        """Called with a deleted thread's id (its code session ends)."""

    async def create_in(
        self, conn: AsyncConnection, project: str, req: CreateThreadRequest, param: str = ""
    ) -> dict[str, Any]:
        """Create a thread and its first messages inside the caller's transaction."""
        resources = await self.refs.tool_resources(conn, project, req.tool_resources)
        for index, message in enumerate(req.messages or []):
            await messages.check_message_files(
                self.refs, conn, project, message, f"{param}messages[{index}]."
            )
        data: dict[str, Any] = {
            "id": new_id("thread"),
            "object": "thread",
            "created_at": now(),
            "tool_resources": resources,
            "metadata": req.metadata or {},
        }
        for message in req.messages or []:
            await self.refs.attach(conn, project, data, message.attachments)
        await repo.insert(conn, project, data)
        for message in req.messages or []:
            await messages.repo.insert(
                conn, project, messages.new_message(data["id"], message), thread_id=data["id"]
            )
        return data

    async def create(self, project: str, req: CreateThreadRequest) -> dict[str, Any]:
        async with self.db.write() as conn:
            return await self.create_in(conn, project, req)

    async def retrieve(self, project: str, thread_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            return await repo.get(conn, project, thread_id)

    async def modify(
        self, project: str, thread_id: str, req: ModifyThreadRequest
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            data = await repo.get(conn, project, thread_id)
            if "tool_resources" in req.model_fields_set:
                data["tool_resources"] = await self.refs.tool_resources(
                    conn, project, req.tool_resources
                )
            if "metadata" in req.model_fields_set:
                data["metadata"] = req.metadata or {}
            return await repo.replace(conn, project, data)

    async def delete(self, project: str, thread_id: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            await repo.delete(conn, project, thread_id)
        if self.on_delete is not None:
            await self.on_delete(thread_id)
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}

    async def list(self, project: str, params: PageParams) -> Page:
        """The project's threads (beyond OpenAI, whose API cannot list them)."""
        async with self.db.read() as conn:
            return await repo.page(conn, project, params)
