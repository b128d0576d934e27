"""Vector stores made on the way: the ``tool_resources.file_search.vector_stores``
helper of assistant and thread create, and the thread's own store that message
attachments for file_search go into (made on first use, expiring 7 days after
its last activity, as OpenAI's did)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.retrieval.pipeline import Attributes
from threadline.schemas.vector_store import resolved_chunking
from threadline.storage import vector_stores as store

THREAD_STORE_DAYS = 7
DAY = 86_400


def new_file(
    file_id: str,
    store_id: str,
    now: int,
    chunking: dict[str, Any],
    attributes: Attributes | None,
) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "vector_store.file",
        "usage_bytes": 0,
        "created_at": now,
        "vector_store_id": store_id,
        "status": "in_progress",
        "last_error": None,
        "chunking_strategy": chunking,
        "attributes": dict(attributes) if attributes is not None else {},
    }


async def create_store(
    conn: AsyncConnection,
    project: str,
    file_ids: Sequence[str],
    *,
    chunking: Any = None,
    metadata: dict[str, str] | None = None,
    expires_days: int | None = None,
) -> str:
    """A new store holding ``file_ids`` (checked by the caller), ingested in the
    background; its id."""
    moment = now()
    policy = {"anchor": "last_active_at", "days": expires_days} if expires_days else None
    data: dict[str, Any] = {
        "id": new_id("vector_store"),
        "object": "vector_store",
        "created_at": moment,
        "name": None,
        "description": None,
        "expires_after": policy,
        "expires_at": moment + expires_days * DAY if expires_days else None,
        "last_active_at": moment,
        "metadata": metadata or {},
    }
    await store.insert_store(conn, project, data)
    await add_files(conn, project, data["id"], file_ids, chunking)
    return str(data["id"])


async def add_files(
    conn: AsyncConnection, project: str, store_id: str, file_ids: Sequence[str], chunking: Any
) -> int:
    """Add the files the store does not hold yet; how many it took."""
    wanted = list(dict.fromkeys(file_ids))
    held = await store.existing_store_file_ids(conn, store_id, wanted)
    moment = now()
    strategy = resolved_chunking(chunking)
    added = 0
    for file_id in wanted:
        if file_id in held:
            continue
        await store.insert_file(
            conn, project, new_file(file_id, store_id, moment, strategy, None), None
        )
        added += 1
    return added


def soon(notify: Callable[[], None] | None) -> None:
    """Tell ingestion new files wait, once the caller's transaction has committed
    (a moment from now) and again a little later."""
    if notify is None:
        return
    loop = asyncio.get_running_loop()
    loop.call_soon(notify)
    loop.call_later(0.2, notify)
