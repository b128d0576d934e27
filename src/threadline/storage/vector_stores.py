"""Vector stores, their files and file batches in storage.

A store file's row copies its status, batch and usage to columns (counts are
aggregated from them, never kept as counters that could drift) and carries the
ingestion lease: ``lease_owner``, ``lease_expires_at``, ``attempts``. Taking a file
and finishing it are compare-and-sets on those columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.storage import tables
from threadline.storage.repository import Repository

stores = Repository(tables.vector_stores, "vector store")
files = Repository(tables.vector_store_files, "vector store file")
batches = Repository(tables.vector_store_file_batches, "vector store file batch")
VS = tables.vector_stores.c
F = tables.vector_store_files.c
FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


@dataclass(frozen=True)
class Counts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    usage_bytes: int = 0

    def wire(self) -> dict[str, int]:
        counts = {status: getattr(self, status) for status in FILE_STATUSES}
        return {**counts, "total": sum(counts.values())}


@dataclass(frozen=True)
class Claimable:
    project_id: str
    vector_store_id: str
    file_id: str
    attempts: int


async def insert_store(conn: AsyncConnection, project: str, data: dict[str, Any]) -> None:
    await stores.insert(conn, project, data, expires_at=data["expires_at"])


async def save_store(conn: AsyncConnection, project: str, data: dict[str, Any]) -> None:
    await stores.replace(conn, project, data, expires_at=data["expires_at"])


async def counts(
    conn: AsyncConnection, column: sa.ColumnElement[Any], keys: Iterable[str]
) -> dict[str, Counts]:
    """File counts and usage per store (``column`` = ``F.vector_store_id``) or per
    batch (``F.batch_id``), for each of ``keys``."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    query = (
        sa.select(
            column, F.status, sa.func.count(), sa.func.coalesce(sa.func.sum(F.usage_bytes), 0)
        )
        .where(column.in_(wanted))
        .group_by(column, F.status)
    )
    found: dict[str, dict[str, int]] = {key: {"usage_bytes": 0} for key in wanted}
    for key, status, number, usage in await conn.execute(query):
        found[key][status] = int(number)
        found[key]["usage_bytes"] += int(usage)
    return {key: Counts(**values) for key, values in found.items()}


async def insert_file(
    conn: AsyncConnection, project: str, data: dict[str, Any], batch_id: str | None
) -> None:
    await files.insert(
        conn,
        project,
        data,
        vector_store_id=data["vector_store_id"],
        batch_id=batch_id,
        status=data["status"],
        usage_bytes=data["usage_bytes"],
    )


async def existing_store_file_ids(
    conn: AsyncConnection, vector_store_id: str, file_ids: Iterable[str]
) -> set[str]:
    wanted = set(file_ids)
    if not wanted:
        return set()
    query = sa.select(F.id).where(F.vector_store_id == vector_store_id, F.id.in_(wanted))
    return set((await conn.execute(query)).scalars())


async def save_file(
    conn: AsyncConnection, data: dict[str, Any], *, seen: str | None = None, **columns: Any
) -> bool:
    """Write a store file's object (its status and usage to their columns), if its
    status is still ``seen`` (when given); whether it was written."""
    clauses = [F.vector_store_id == data["vector_store_id"], F.id == data["id"]]
    if seen is not None:
        clauses.append(F.status == seen)
    result = await conn.execute(
        tables.vector_store_files.update()
        .where(*clauses)
        .values(data=data, status=data["status"], usage_bytes=data["usage_bytes"], **columns)
    )
    return bool(result.rowcount == 1)


async def delete_file(
    conn: AsyncConnection, project: str, vector_store_id: str, file_id: str
) -> None:
    await files.delete(conn, project, file_id, vector_store_id=vector_store_id)


async def file_status(conn: AsyncConnection, vector_store_id: str, file_id: str) -> str | None:
    query = sa.select(F.status).where(F.vector_store_id == vector_store_id, F.id == file_id)
    value = (await conn.execute(query)).scalar()
    return None if value is None else str(value)


async def file_content(conn: AsyncConnection, vector_store_id: str, file_id: str) -> str | None:
    query = sa.select(F.content).where(F.vector_store_id == vector_store_id, F.id == file_id)
    value = (await conn.execute(query)).scalar()
    return None if value is None else str(value)


async def in_progress_of_batch(conn: AsyncConnection, batch_id: str) -> list[dict[str, Any]]:
    query = sa.select(F.data).where(F.batch_id == batch_id, F.status == "in_progress")
    return [dict(row.data) for row in await conn.execute(query)]


async def claimable(conn: AsyncConnection, now: float, limit: int = 100) -> list[Claimable]:
    """Files waiting for ingestion: never taken, or their taker's lease lapsed."""
    query = (
        sa.select(F.project_id, F.vector_store_id, F.id, F.attempts)
        .where(
            F.status == "in_progress",
            sa.or_(F.lease_expires_at.is_(None), F.lease_expires_at < now),
        )
        .order_by(F.seq)
        .limit(limit)
    )
    return [Claimable(*row) for row in await conn.execute(query)]


async def claim(
    conn: AsyncConnection,
    vector_store_id: str,
    file_id: str,
    *,
    owner: str,
    until: float,
    now: float,
) -> dict[str, Any] | None:
    """Take a waiting file's lease (one more attempt): its object and attempt count,
    or None when it is not waiting any more or another process holds it."""
    result = await conn.execute(
        tables.vector_store_files.update()
        .where(
            F.vector_store_id == vector_store_id,
            F.id == file_id,
            F.status == "in_progress",
            sa.or_(F.lease_expires_at.is_(None), F.lease_expires_at < now),
        )
        .values(lease_owner=owner, lease_expires_at=until, attempts=F.attempts + 1)
    )
    if result.rowcount != 1:
        return None
    query = sa.select(F.data, F.attempts).where(
        F.vector_store_id == vector_store_id, F.id == file_id
    )
    row = (await conn.execute(query)).one()
    return {"data": dict(row.data), "attempts": int(row.attempts)}


async def renew(
    conn: AsyncConnection, vector_store_id: str, file_id: str, owner: str, until: float
) -> bool:
    result = await conn.execute(
        tables.vector_store_files.update()
        .where(
            F.vector_store_id == vector_store_id,
            F.id == file_id,
            F.lease_owner == owner,
            F.status == "in_progress",
        )
        .values(lease_expires_at=until)
    )
    return bool(result.rowcount == 1)


async def release(conn: AsyncConnection, owner: str) -> int:
    """Hand back every lease ``owner`` holds (a stopping process): the files wait
    for the next sweep, here or elsewhere, without waiting for the leases to lapse."""
    result = await conn.execute(
        tables.vector_store_files.update()
        .where(F.lease_owner == owner, F.status == "in_progress")
        .values(lease_owner=None, lease_expires_at=None)
    )
    return int(result.rowcount)


async def finish(
    conn: AsyncConnection, data: dict[str, Any], owner: str, content: str | None
) -> bool:
    """Record the outcome of ``owner``'s ingestion; False if the file was cancelled,
    deleted or taken over meanwhile."""
    result = await conn.execute(
        tables.vector_store_files.update()
        .where(
            F.vector_store_id == data["vector_store_id"],
            F.id == data["id"],
            F.lease_owner == owner,
            F.status == "in_progress",
        )
        .values(
            data=data,
            status=data["status"],
            usage_bytes=data["usage_bytes"],
            content=content,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return bool(result.rowcount == 1)


async def touch_stores(
    conn: AsyncConnection, project: str, store_ids: Sequence[str], now: int
) -> None:
    """Mark stores used now: ``last_active_at`` moves, and the expiry with it."""
    for store_id in store_ids:
        data = await stores.find(conn, project, store_id)
        if data is None:
            continue
        data["last_active_at"] = now
        policy = data.get("expires_after")
        data["expires_at"] = now + policy["days"] * 86400 if policy else None
        await save_store(conn, project, data)
