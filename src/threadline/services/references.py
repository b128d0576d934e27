"""Checks that ids named inside a request (files, tool resources) exist for the
caller's project, so that no object is stored pointing at nothing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.errors import InvalidRequestError
from threadline.schemas.tools import ToolResources
from threadline.storage import objects, vector_stores


class References:
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
        if resources.file_search is not None and resources.file_search.vector_stores:
            raise InvalidRequestError(
                "Creating vector stores through 'tool_resources.file_search.vector_stores' "
                "is not supported yet; create the vector store first and pass its id.",
                param="tool_resources.file_search.vector_stores",
                code="unsupported_parameter",
            )
