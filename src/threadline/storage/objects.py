"""The object tables' repositories, and the look-ups services make across them."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.run_status import ACTIVE
from threadline.storage import tables
from threadline.storage.prepared import Prepared
from threadline.storage.repository import Repository

assistants = Repository(tables.assistants, "assistant")
threads = Repository(tables.threads, "thread")
messages = Repository(tables.messages, "message")
files = Repository(tables.files, "file")

# Built once, its statuses as separate comparisons: every run creation and message
# asks, and an ``IN`` list is expanded anew on each execution.
_ACTIVE_RUN = Prepared(
    sa.select(tables.runs.c.id)
    .where(
        tables.runs.c.thread_id == sa.bindparam("thread_id"),
        sa.or_(*(tables.runs.c.status == str(status) for status in sorted(ACTIVE))),
    )
    .limit(1)
)


async def active_run_id(conn: AsyncConnection, thread_id: str) -> str | None:
    """The thread's unfinished run, if it has one."""
    found = (await _ACTIVE_RUN.execute(conn, {"thread_id": thread_id})).scalar()
    return None if found is None else str(found)


async def existing_file_ids(
    conn: AsyncConnection, project: str, file_ids: Iterable[str]
) -> set[str]:
    """Those of ``file_ids`` that name files of ``project``."""
    wanted = set(file_ids)
    if not wanted:
        return set()
    query = sa.select(tables.files.c.id).where(
        tables.files.c.project_id == project, tables.files.c.id.in_(wanted)
    )
    return set((await conn.execute(query)).scalars())
