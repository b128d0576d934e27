"""code_interpreter's bookkeeping: the session a thread's code runs in now, and the
files each call's code produced. Both outlive the worker that wrote them, so that
a turn resumed or run on another worker knows them."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.storage import tables

S = tables.code_sessions.c
OUT = tables.code_outputs.c


async def session_of(conn: AsyncConnection, thread_id: str) -> str | None:
    """The id of the session the thread's code last ran in, if any."""
    query = sa.select(S.session_id).where(S.thread_id == thread_id)
    found: str | None = (await conn.execute(query)).scalar_one_or_none()
    return found


async def record_session(
    conn: AsyncConnection, thread_id: str, session_id: str, holder: str, started_at: int
) -> None:
    """The thread's code runs in ``session_id`` from now on (held by ``holder``)."""
    await conn.execute(tables.code_sessions.delete().where(S.thread_id == thread_id))
    await conn.execute(
        tables.code_sessions.insert().values(
            thread_id=thread_id, session_id=session_id, holder=holder, started_at=started_at
        )
    )


async def add_outputs(
    conn: AsyncConnection, thread_id: str, run_id: str, call_id: str, made: Mapping[str, str]
) -> None:
    """The files (name: file id) the code of ``call_id`` produced."""
    if made:
        rows = [
            {"thread_id": thread_id, "run_id": run_id, "call_id": call_id, "name": n, "file_id": f}
            for n, f in made.items()
        ]
        await conn.execute(tables.code_outputs.insert(), rows)


async def outputs_of_run(conn: AsyncConnection, run_id: str) -> dict[str, dict[str, str]]:
    """The files the run's calls produced: by call id, file id by name."""
    query = (
        sa.select(OUT.call_id, OUT.name, OUT.file_id).where(OUT.run_id == run_id).order_by(OUT.seq)
    )
    found: dict[str, dict[str, str]] = {}
    for call_id, name, file_id in await conn.execute(query):
        found.setdefault(call_id, {})[name] = file_id
    return found


async def outputs_of_thread(conn: AsyncConnection, thread_id: str) -> dict[str, str]:
    """The files the thread's code saved, the latest by name."""
    query = sa.select(OUT.name, OUT.file_id).where(OUT.thread_id == thread_id).order_by(OUT.seq)
    return {name: file_id for name, file_id in await conn.execute(query)}


async def forget_thread(conn: AsyncConnection, thread_id: str) -> None:
    await conn.execute(tables.code_sessions.delete().where(S.thread_id == thread_id))
    await conn.execute(tables.code_outputs.delete().where(OUT.thread_id == thread_id))
