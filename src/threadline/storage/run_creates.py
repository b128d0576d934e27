"""A run's creation in its thread, in as few statements as it can be on PostgreSQL:
the thread's row locked, its active run and the run's assistant read, all in one
statement (``open_thread``); then the run stored only if the thread has no other
active run, the thread's messages read in the same statement (``insert_idle``).

The thread's lock makes the run creations and the message creations of one thread
take turns. The check that stores the run is part of the INSERT, a statement begun
after the lock was granted: it sees every run an earlier holder of the lock stored
(READ COMMITTED, a new snapshot per statement). The active run ``open_thread``
reads is from before the lock was granted (its statement's snapshot), only good
for refusing early: a thread it finds idle may no longer be. The messages read with
the INSERT are those the thread had when the run was stored.

On SQLite, whose write transactions take turns from their ``BEGIN IMMEDIATE`` on and
are local calls, each read and write is the statement of its own it always was.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.run_status import ACTIVE
from threadline.errors import NotFoundError, ThreadBusyError
from threadline.storage import objects, tables
from threadline.storage.prepared import Prepared
from threadline.storage.runs import insert_run, thread_history

R = tables.runs.c
T = tables.threads.c
A = tables.assistants.c
M = tables.messages.c


@dataclass
class Opened:
    """A thread a run is about to be created in, locked for the transaction: its
    object, its active run's id (``None``: none seen) and the run's assistant
    (``None``: the project has no such assistant)."""

    thread: dict[str, Any]
    active_run: str | None
    assistant: dict[str, Any] | None


def _active_run_of(thread_id: sa.ColumnElement[str]) -> sa.Select[tuple[str]]:
    return (
        sa.select(R.id)
        .where(
            R.thread_id == thread_id,
            sa.or_(*(R.status == str(status) for status in sorted(ACTIVE))),
        )
        .limit(1)
    )


# Built once: building a statement costs more than its round trip.
_OPEN = Prepared(
    sa.select(
        T.data,
        _active_run_of(T.id).scalar_subquery().label("active_run"),
        sa.select(A.data)
        .where(A.id == sa.bindparam("assistant_id"), A.project_id == sa.bindparam("project_id"))
        .scalar_subquery()
        .label("assistant"),
    )
    .where(T.id == sa.bindparam("thread_id"), T.project_id == sa.bindparam("project_id"))
    .with_for_update(key_share=True, of=tables.threads)
)


async def open_thread(
    conn: AsyncConnection, project_id: str, thread_id: str, assistant_id: str
) -> Opened:
    """The thread (``NotFoundError`` if the project has none such), locked until the
    transaction ends, with its active run and the assistant ``assistant_id``."""
    if conn.dialect.name != "postgresql":
        thread = await objects.threads.get(conn, project_id, thread_id)
        active = await objects.active_run_id(conn, thread_id)
        assistant = await objects.assistants.find(conn, project_id, assistant_id)
        return Opened(thread, active, assistant)
    params = {"project_id": project_id, "thread_id": thread_id, "assistant_id": assistant_id}
    row = (await _OPEN.execute(conn, params)).first()
    if row is None:
        raise NotFoundError.for_object("thread", thread_id)
    assistant = None if row.assistant is None else dict(row.assistant)
    return Opened(dict(row.data), row.active_run, assistant)


_COLUMNS = ("id", "project_id", "thread_id", "status", "created_at", "expires_at")


async def insert_idle(
    conn: AsyncConnection,
    project_id: str,
    run: dict[str, Any],
    *,
    history: bool = False,
    **columns: Any,
) -> list[dict[str, Any]]:
    """Store the new ``run`` (with ``columns`` besides those ``runs.insert_run``
    sets) if its thread has no active run, else raise ``ThreadBusyError``; the
    thread's messages, oldest first, when ``history`` (else ``[]``). On SQLite the
    caller checked the thread's runs in its transaction (``open_thread``)."""
    if conn.dialect.name != "postgresql":
        await insert_run(conn, project_id, run, **columns)
        return await thread_history(conn, run["thread_id"], run["id"]) if history else []
    query = _build(tuple(sorted(columns)), history)
    params = {
        "v_id": run["id"],
        "v_project_id": project_id,
        "v_thread_id": run["thread_id"],
        "v_status": run["status"],
        "v_created_at": run["created_at"],
        "v_expires_at": run["expires_at"],
        "v_data": run,
        **{f"v_{name}": value for name, value in columns.items()},
    }
    rows = list(await query.execute(conn, params))
    if not rows:
        active = await objects.active_run_id(conn, run["thread_id"])
        raise ThreadBusyError.for_thread(run["thread_id"], active)
    return [dict(row.data) for row in rows if row.data is not None] if history else []


# ``insert_idle``'s statements, built once per shape: the columns the run sets
# besides the usual ones, and whether the thread's messages come back too.
@functools.cache
def _build(columns: tuple[str, ...], history: bool) -> Prepared:
    names = (*_COLUMNS, *columns, "data")
    thread_id = sa.bindparam("v_thread_id", type_=R.thread_id.type)
    values = sa.select(
        *(
            thread_id if name == "thread_id" else sa.bindparam(f"v_{name}", type_=R[name].type)
            for name in names
        )
    ).where(~_active_run_of(thread_id).exists())
    stored = tables.runs.insert().from_select(names, values).returning(R.id).cte("stored")
    if not history:
        return Prepared(sa.select(stored.c.id))  # one row if the run was stored
    # One row if the run was stored: each of the thread's messages, or one with no
    # message when the thread has none. None when it was not.
    joined = stored.outerjoin(tables.messages, M.thread_id == thread_id)
    return Prepared(sa.select(stored.c.id, M.data).select_from(joined).order_by(M.seq))
