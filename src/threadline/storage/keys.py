"""API keys in storage: only their hashes and a hint are kept."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.storage import tables

K = tables.api_keys.c


async def insert_key(
    conn: AsyncConnection,
    *,
    key_id: str,
    project_id: str,
    name: str | None,
    key_hash: str,
    key_hint: str,
    created_at: int,
) -> None:
    await conn.execute(
        tables.api_keys.insert().values(
            id=key_id,
            project_id=project_id,
            name=name,
            key_hash=key_hash,
            key_hint=key_hint,
            created_at=created_at,
        )
    )


async def list_keys(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every stored key (id, project, name, hint, creation time), oldest first."""
    rows = await conn.execute(
        sa.select(K.id, K.project_id, K.name, K.key_hint, K.created_at).order_by(K.seq)
    )
    return [dict(row._mapping) for row in rows]


async def delete_key(conn: AsyncConnection, key_id: str) -> bool:
    """Remove the key; False if there was none with that id."""
    result = await conn.execute(tables.api_keys.delete().where(K.id == key_id))
    return bool(result.rowcount)


async def key_hashes(conn: AsyncConnection) -> dict[str, str]:
    """Every stored key's hash, with its project."""
    rows = await conn.execute(sa.select(K.key_hash, K.project_id))
    return {row.key_hash: row.project_id for row in rows}
