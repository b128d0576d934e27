"""Assistants: create, retrieve, modify, delete, list."""

from __future__ import annotations

from typing import Any

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.domain.pages import Page, PageParams
from threadline.schemas.assistant import CreateAssistantRequest, ModifyAssistantRequest
from threadline.schemas.tools import dump_response_format
from threadline.services.references import References
from threadline.storage import objects
from threadline.storage.db import Database

repo = objects.assistants


class AssistantService:
    def __init__(self, db: Database, refs: References) -> None:
        self.db = db
        self.refs = refs

    async def create(self, project: str, req: CreateAssistantRequest) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": new_id("assistant"),
            "object": "assistant",
            "created_at": now(),
            "name": req.name,
            "description": req.description,
            "model": req.model,
            "instructions": req.instructions,
            "tools": [tool.model_dump(exclude_none=True) for tool in req.tools],
            "tool_resources": {},
            "metadata": req.metadata or {},
            "temperature": req.temperature,
            "top_p": req.top_p,
            "response_format": dump_response_format(req.response_format),
            "reasoning_effort": req.reasoning_effort,
        }
        async with self.db.write() as conn:
            data["tool_resources"] = await self.refs.tool_resources(
                conn, project, req.tool_resources
            )
            return await repo.insert(conn, project, data)

    async def retrieve(self, project: str, assistant_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            return await repo.get(conn, project, assistant_id)

    async def modify(
        self, project: str, assistant_id: str, req: ModifyAssistantRequest
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            data = await repo.get(conn, project, assistant_id)
            fields = req.model_fields_set
            for name in ("model", "name", "description", "instructions", "reasoning_effort"):
                if name in fields:
                    data[name] = getattr(req, name)
            for name in ("temperature", "top_p"):
                if name in fields:
                    data[name] = getattr(req, name)
            if "tools" in fields:
                data["tools"] = [t.model_dump(exclude_none=True) for t in req.tools or []]
            if "tool_resources" in fields:
                data["tool_resources"] = await self.refs.tool_resources(
                    conn, project, req.tool_resources
                )
            if "metadata" in fields:
                data["metadata"] = req.metadata or {}
            if "response_format" in fields:
                data["response_format"] = dump_response_format(req.response_format) or "auto"
            return await repo.replace(conn, project, data)

    async def delete(self, project: str, assistant_id: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            await repo.delete(conn, project, assistant_id)
        return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}

    async def list(self, project: str, params: PageParams) -> Page:
        async with self.db.read() as conn:
            return await repo.page(conn, project, params)
