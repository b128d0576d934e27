"""What ``/metrics`` reads from storage at each scrape: a few aggregates over
indexed status columns (``ix_runs_status``, ``ix_vector_store_files_status``),
for the whole deployment whichever process is scraped."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.run_status import RunStatus
from threadline.storage import tables

R = tables.runs.c
F = tables.vector_store_files.c

_QUEUED = sa.select(sa.func.count(), sa.func.min(R.created_at)).where(
    R.status == str(RunStatus.QUEUED)
)
_INGESTING = sa.select(sa.func.count()).where(F.status == "in_progress")


@dataclass(frozen=True)
class Backlog:
    queued: int
    oldest_queued_at: int | None  # Unix seconds
    ingesting: int


async def backlog(conn: AsyncConnection) -> Backlog:
    queued, oldest = (await conn.execute(_QUEUED)).one()
    ingesting = (await conn.execute(_INGESTING)).scalar_one()
    return Backlog(int(queued), None if oldest is None else int(oldest), int(ingesting))
