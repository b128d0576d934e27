"""Checks that ids named inside a request (files, tool resources) exist for the
caller's project, so that no object is stored pointing at nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.errors import InvalidRequestError
from threadline.schemas.message import Attachment
from threadline.schemas.tools import ToolResources, dump_tool_resources
from threadline.services.inline_stores import THREAD_STORE_DAYS, add_files, create_store, soon
from threadline.storage import objects, vector_stores


class References:
    def __init__(self) -> None:
        #: told when files were added to stores (the ingestion worker's ``notify``)
        self.notify_ingestion: Callable[[], None] | None = None

    async def check_files(
        self, conn: AsyncConnection, project: str, file_ids: Iterable[str], param: str
    ) -> None:
        wanted = set(file_ids)
        found = await objects.existing_file_ids(conn, project, wanted)
        missing = sorted(wanted - found)
        if missing:
            raise InvalidRequestError(
                f"Invalid '{param}': no file with id '{missing[0]}'.",
                param=param,
                code="invalid_file_id",
            )

    async def check_stores(
        self, conn: AsyncConnection, project: str, store_ids: Iterable[str], param: str
    ) -> None:
        for store_id in store_ids:
            if await vector_stores.stores.find(conn, project, store_id) is None:
                raise InvalidRequestError(
                    f"Invalid '{param}': no vector store with id '{store_id}'.",
                    param=param,
                    code="invalid_value",
                )

    async def check_tool_resources(
        self, conn: AsyncConnection, project: str, resources: ToolResources | None
    ) -> None:
        if resources is None:
            return
        if resources.code_interpreter is not None:
            await self.check_files(
                conn,
                project,
                resources.code_interpreter.file_ids,
                "tool_resources.code_interpreter.file_ids",
            )
        if resources.file_search is not None:
            await self.check_stores(
                conn,
                project,
                resources.file_search.vector_store_ids,
                "tool_resources.file_search.vector_store_ids",
            )
        search = resources.file_search
        if search is not None and search.vector_stores:
            if search.vector_store_ids:
                raise InvalidRequestError(
                    "Invalid 'tool_resources.file_search': give 'vector_store_ids' or "
                    "'vector_stores', not both (at most one vector store).",
                    param="tool_resources.file_search",
                    code="invalid_value",
                )
            for index, new in enumerate(search.vector_stores):
                await self.check_files(
                    conn,
                    project,
                    new.file_ids,
                    f"tool_resources.file_search.vector_stores[{index}].file_ids",
                )

    async def tool_resources(
        self, conn: AsyncConnection, project: str, resources: ToolResources | None
    ) -> dict[str, Any]:
        """The resources as stored, once checked; the ``vector_stores`` helper's
        store is created here (its files ingested in the background)."""
        await self.check_tool_resources(conn, project, resources)
        stored = dump_tool_resources(resources)
        search = resources.file_search if resources is not None else None
        if search is not None and search.vector_stores:
            [new] = search.vector_stores
            store_id = await create_store(
                conn,
                project,
                new.file_ids,
                chunking=new.chunking_strategy,
                metadata=new.metadata,
            )
            stored["file_search"] = {"vector_store_ids": [store_id]}
            if new.file_ids:
                soon(self.notify_ingestion)
        return stored

    async def attach(
        self,
        conn: AsyncConnection,
        project: str,
        thread: dict[str, Any],
        attachments: Sequence[Attachment] | None,
    ) -> bool:
        """Put the files attached for file_search into the thread's store (made
        now if the thread has none); True when ``thread`` changed and needs saving."""
        file_ids = [
            a.file_id for a in attachments or [] if any(t.type == "file_search" for t in a.tools)
        ]
        if not file_ids:
            return False
        resources = thread.get("tool_resources") or {}
        ids = (resources.get("file_search") or {}).get("vector_store_ids") or []
        if ids and await vector_stores.stores.find(conn, project, ids[0]) is not None:
            if await add_files(conn, project, ids[0], file_ids, None):
                soon(self.notify_ingestion)
            return False
        store_id = await create_store(conn, project, file_ids, expires_days=THREAD_STORE_DAYS)
        thread["tool_resources"] = {**resources, "file_search": {"vector_store_ids": [store_id]}}
        soon(self.notify_ingestion)
        return True
