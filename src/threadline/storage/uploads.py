"""Uploads, their parts, and the look-ups expiry makes (uploads and files past
their ``expires_at``). A part's bytes are a blob under the part's id; its row
says how many there are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.storage import tables
from threadline.storage.repository import Repository

uploads = Repository(tables.uploads, "upload")
parts = Repository(tables.upload_parts, "upload part")
U = tables.uploads.c
P = tables.upload_parts.c
FILES = tables.files.c


@dataclass(frozen=True)
class Part:
    id: str
    bytes: int


async def insert_upload(conn: AsyncConnection, project: str, data: dict[str, Any]) -> None:
    await uploads.insert(conn, project, data, status=data["status"], expires_at=data["expires_at"])


async def save_upload(conn: AsyncConnection, project: str, data: dict[str, Any]) -> None:
    await uploads.replace(conn, project, data, status=data["status"])


async def insert_part(conn: AsyncConnection, project: str, data: dict[str, Any], size: int) -> None:
    await parts.insert(conn, project, data, upload_id=data["upload_id"], bytes=size)


async def parts_of(conn: AsyncConnection, upload_id: str) -> dict[str, Part]:
    """The upload's parts by id."""
    query = sa.select(P.id, P.bytes).where(P.upload_id == upload_id)
    return {row.id: Part(row.id, int(row.bytes)) for row in await conn.execute(query)}


async def delete_parts(conn: AsyncConnection, part_ids: Sequence[str]) -> None:
    if part_ids:
        await conn.execute(sa.delete(tables.upload_parts).where(P.id.in_(list(part_ids))))


async def overdue_uploads(conn: AsyncConnection, now: int, limit: int) -> list[tuple[str, str]]:
    """(project, id) of pending uploads past their ``expires_at``."""
    query = (
        sa.select(U.project_id, U.id)
        .where(U.status == "pending", U.expires_at <= now)
        .order_by(U.expires_at)
        .limit(limit)
    )
    return [(row.project_id, row.id) for row in await conn.execute(query)]


async def ended_upload_parts(conn: AsyncConnection, limit: int) -> list[str]:
    """Parts left behind by uploads that are no longer pending (a process that
    ended one stopped before it removed them)."""
    query = (
        sa.select(P.id)
        .join(tables.uploads, U.id == P.upload_id)
        .where(U.status != "pending")
        .limit(limit)
    )
    return list((await conn.execute(query)).scalars())


async def overdue_files(conn: AsyncConnection, now: int, limit: int) -> list[tuple[str, str]]:
    """(project, id) of files past their ``expires_at``."""
    query = (
        sa.select(tables.files.c.project_id, FILES.id)
        .where(FILES.expires_at.is_not(None), FILES.expires_at <= now)
        .order_by(FILES.expires_at)
        .limit(limit)
    )
    return [(row.project_id, row.id) for row in await conn.execute(query)]
