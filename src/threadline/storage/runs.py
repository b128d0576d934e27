"""Runs and run steps in storage. Every status change is a compare-and-set:
``UPDATE runs … WHERE id = :id AND status = :seen``; losing the race raises
``ConflictError`` and the whole transaction rolls back."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.run_status import RunStatus
from threadline.errors import ConflictError
from threadline.storage import tables
from threadline.storage.prepared import Prepared
from threadline.storage.repository import Repository

runs = Repository(tables.runs, "run")
steps = Repository(tables.run_steps, "run step")
messages = Repository(tables.messages, "message")
R = tables.runs.c
ST = tables.run_steps.c
M = tables.messages.c

# The statements every run executes, built once (see ``prepared``).
RUN_ROW = (
    R.id,
    R.project_id,
    R.status,
    R.lease_owner,
    R.attempts,
    R.prompt_tokens,
    R.completion_tokens,
    R.data,
)
"""The columns of a run's row as ``lock_run`` reads it (``run_writes`` reads them too)."""
_run_row = sa.select(*RUN_ROW).where(R.id == sa.bindparam("run_id"))
_RUN_ROW = Prepared(_run_row)
_RUN_ROW_LOCKED = Prepared(_run_row.with_for_update())
_run_holder = sa.select(R.project_id, R.status, R.lease_owner).where(R.id == sa.bindparam("run_id"))
_RUN_HOLDER = Prepared(_run_holder)
_RUN_HOLDER_LOCKED = Prepared(_run_holder.with_for_update())
_SAVE_RUN = Prepared(
    tables.runs.update().where(R.id == sa.bindparam("_run_id"), R.status == sa.bindparam("_seen"))
)
_STEPS_OF = Prepared(sa.select(ST.data).where(ST.run_id == sa.bindparam("run_id")).order_by(ST.seq))
_SAVE_STEP = Prepared(
    tables.run_steps.update()
    .where(ST.id == sa.bindparam("step_id"))
    .values(data=sa.bindparam("step_data"))
)
_RUN_MESSAGES = Prepared(
    sa.select(M.data).where(M.run_id == sa.bindparam("run_id")).order_by(M.seq)
)
_SAVE_MESSAGE = Prepared(
    tables.messages.update()
    .where(M.id == sa.bindparam("message_id"))
    .values(data=sa.bindparam("message_data"))
)
_THREAD_HISTORY = Prepared(
    sa.select(M.data)
    .where(
        M.thread_id == sa.bindparam("thread_id"),
        sa.or_(M.run_id.is_(None), M.run_id != sa.bindparam("exclude_run")),
    )
    .order_by(M.seq)
)

_THREAD_MESSAGES = Prepared(
    sa.select(M.data, M.run_id).where(M.thread_id == sa.bindparam("thread_id")).order_by(M.seq)
)


async def insert_run(
    conn: AsyncConnection, project_id: str, data: dict[str, Any], **columns: Any
) -> None:
    """Store a new run (its thread, status and expiry copied to their columns)."""
    await runs.insert(
        conn,
        project_id,
        data,
        thread_id=data["thread_id"],
        status=data["status"],
        expires_at=data["expires_at"],
        **columns,
    )


async def lock_run(conn: AsyncConnection, run_id: str) -> Any:
    """The run's row, locked for this transaction (SQLite: by BEGIN IMMEDIATE)."""
    query = _RUN_ROW_LOCKED if conn.dialect.name == "postgresql" else _RUN_ROW
    return (await query.execute(conn, {"run_id": run_id})).first()


async def lock_run_holder(conn: AsyncConnection, run_id: str) -> Any:
    """The run's project, status and lease owner, locked like ``lock_run`` (without
    reading and decoding its whole object)."""
    query = _RUN_HOLDER_LOCKED if conn.dialect.name == "postgresql" else _RUN_HOLDER
    return (await query.execute(conn, {"run_id": run_id})).first()


async def insert_output_if_held(
    conn: AsyncConnection, run_id: str, worker_id: str, objects: list[tuple[str, dict[str, Any]]]
) -> bool:
    """Insert a turn's new steps and messages (``("step" | "message", data)``) if the
    run is still ``in_progress`` under ``worker_id``'s lease; False, inserting
    nothing, if it is not. On PostgreSQL one statement (the check, the run's row lock
    and the inserts in one round trip, for ``Database.single_write``); on SQLite
    statements in the caller's write transaction."""
    if conn.dialect.name != "postgresql":
        row = await lock_run_holder(conn, run_id)
        if row is None or row.status != str(RunStatus.IN_PROGRESS) or row.lease_owner != worker_id:
            return False
        await insert_new(conn, row.project_id, objects)
        return True
    query = _held_inserts(tuple(kind for kind, _data in objects))
    params = {"_run_id": run_id, "_worker_id": worker_id, **new_params(objects)}
    return (await query.execute(conn, params)).first() is not None


async def insert_new(
    conn: AsyncConnection, project_id: str, objects: Iterable[tuple[str, dict[str, Any]]]
) -> None:
    """Insert new steps and messages (``("step" | "message", data)``), one statement
    each, in the caller's transaction."""
    for kind, data in objects:
        await (insert_step if kind == "step" else insert_message)(conn, project_id, data)


@functools.cache
def _held_inserts(kinds: tuple[str, ...]) -> Prepared:
    """``insert_output_if_held``'s statement for objects of these kinds, built once
    (building one, and its cache key, costs more than its round trip)."""
    holder = (
        sa.select(R.project_id)
        .where(
            R.id == sa.bindparam("_run_id"),
            R.status == str(RunStatus.IN_PROGRESS),
            R.lease_owner == sa.bindparam("_worker_id"),
        )
        .with_for_update()
        .cte("holder")
    )
    return Prepared(sa.select(holder.c.project_id).add_cte(*inserts_from(holder, kinds)))


_NEW_COLUMNS = ("id", "project_id", "thread_id", "run_id", "created_at", "data")


def inserts_from(source: sa.CTE, kinds: Sequence[str]) -> list[sa.CTE]:
    """For one PostgreSQL statement: an INSERT of each new step or message
    (``kinds``: "step" or "message" each) for each row of ``source`` (a CTE with the
    run's ``project_id``), none when ``source`` has no row; their values are the
    parameters ``new_params`` gives."""
    inserts = []
    for position, kind in enumerate(kinds):
        table = tables.run_steps if kind == "step" else tables.messages
        name = f"new_{position}_"
        values = sa.select(
            sa.bindparam(name + "id", type_=sa.String),
            source.c.project_id,
            sa.bindparam(name + "thread_id", type_=sa.String),
            sa.bindparam(name + "run_id", type_=sa.String),
            sa.bindparam(name + "created_at", type_=sa.BigInteger),
            sa.bindparam(name + "data", type_=table.c.data.type),
        )
        insert = table.insert().from_select(_NEW_COLUMNS, values).returning(table.c.id)
        inserts.append(insert.cte(f"new_{position}"))
    return inserts


def new_params(objects: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The parameters of ``inserts_from``'s statements for ``objects``."""
    params: dict[str, Any] = {}
    for position, (_kind, data) in enumerate(objects):
        name = f"new_{position}_"
        params[name + "id"] = data["id"]
        params[name + "thread_id"] = data["thread_id"]
        params[name + "run_id"] = data["run_id"]
        params[name + "created_at"] = data["created_at"]
        params[name + "data"] = data
    return params


async def save_run(
    conn: AsyncConnection, data: dict[str, Any], seen: RunStatus | str, **columns: Any
) -> dict[str, Any]:
    """Write ``data`` (and its status) if the run still has status ``seen``."""
    result: Any
    if any(isinstance(value, sa.ClauseElement) for value in columns.values()):
        result = await conn.execute(
            tables.runs.update()
            .where(R.id == data["id"], R.status == str(seen))
            .values(data=data, status=data["status"], **columns)
        )
    else:  # the SET clause comes from the parameters' names
        params = {"_run_id": data["id"], "_seen": str(seen), "data": data}
        params.update(status=data["status"], **columns)
        result = await _SAVE_RUN.execute(conn, params)
    if result.rowcount != 1:
        raise ConflictError(
            f"Run {data['id']} changed while it was being updated.", code="run_conflict"
        )
    return data


async def add_usage(conn: AsyncConnection, run_id: str, usage: Any) -> None:
    """Count a model call's tokens on the run (``usage``: prompt and completion
    tokens) before the run's next status change."""
    await conn.execute(
        tables.runs.update()
        .where(R.id == run_id)
        .values(
            prompt_tokens=R.prompt_tokens + int(usage.prompt_tokens),
            completion_tokens=R.completion_tokens + int(usage.completion_tokens),
        )
    )


async def run_ids_with_status(
    conn: AsyncConnection, statuses: Iterable[RunStatus], **filters: Any
) -> list[str]:
    query = sa.select(R.id).where(R.status.in_([str(s) for s in statuses]))
    for name, clause in filters.items():
        if name == "lease_before":
            query = query.where(sa.or_(R.lease_expires_at.is_(None), R.lease_expires_at < clause))
        elif name == "expires_before":
            query = query.where(R.expires_at.is_not(None), R.expires_at <= clause)
    return list((await conn.execute(query.order_by(R.seq))).scalars())


async def steps_of(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    rows = await _STEPS_OF.execute(conn, {"run_id": run_id})
    return [dict(row.data) for row in rows]


async def save_step(conn: AsyncConnection, project_id: str, data: dict[str, Any]) -> None:
    await _SAVE_STEP.execute(conn, {"step_id": data["id"], "step_data": data})


async def insert_step(conn: AsyncConnection, project_id: str, data: dict[str, Any]) -> None:
    await steps.insert(conn, project_id, data, run_id=data["run_id"], thread_id=data["thread_id"])


async def run_messages(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    rows = await _RUN_MESSAGES.execute(conn, {"run_id": run_id})
    return [dict(row.data) for row in rows]


async def save_message(conn: AsyncConnection, data: dict[str, Any]) -> None:
    await _SAVE_MESSAGE.execute(conn, {"message_id": data["id"], "message_data": data})


async def insert_message(conn: AsyncConnection, project_id: str, data: dict[str, Any]) -> None:
    await messages.insert(
        conn, project_id, data, thread_id=data["thread_id"], run_id=data["run_id"]
    )


async def delete_unfinished_output(conn: AsyncConnection, run_id: str) -> None:
    """Forget what a lost attempt left half-made: steps and messages still
    ``in_progress`` whose run is about to be tried again."""
    await conn.execute(
        tables.run_steps.delete().where(
            ST.run_id == run_id, ST.id.in_(_in_progress_step_ids(run_id))
        )
    )
    unfinished = [m["id"] for m in await run_messages(conn, run_id) if m["status"] == "in_progress"]
    if unfinished:
        await conn.execute(tables.messages.delete().where(M.id.in_(unfinished)))


def _in_progress_step_ids(run_id: str) -> sa.Select[tuple[str]]:
    # JSON status lives in `data`; compare in Python-agnostic SQL via the JSON path.
    return sa.select(ST.id).where(
        ST.run_id == run_id, ST.data["status"].as_string() == "in_progress"
    )


async def history_and_own(
    conn: AsyncConnection, thread_id: str, run_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``thread_history`` and ``run_messages`` in one query (a run's messages are in
    its thread)."""
    history: list[dict[str, Any]] = []
    own: list[dict[str, Any]] = []
    for row in await _THREAD_MESSAGES.execute(conn, {"thread_id": thread_id}):
        (own if row.run_id == run_id else history).append(dict(row.data))
    return history, own


async def thread_history(
    conn: AsyncConnection, thread_id: str, exclude_run: str
) -> list[dict[str, Any]]:
    """The thread's messages in order, without those the given run made."""
    rows = await _THREAD_HISTORY.execute(conn, {"thread_id": thread_id, "exclude_run": exclude_run})
    return [dict(row.data) for row in rows]


async def renew_lease(conn: AsyncConnection, run_id: str, owner: str, until: float) -> bool:
    """Extend ``owner``'s lease on an executing run; False if it is no longer theirs."""
    result = await conn.execute(
        tables.runs.update()
        .where(R.id == run_id, R.lease_owner == owner, R.status == str(RunStatus.IN_PROGRESS))
        .values(lease_expires_at=until)
    )
    return bool(result.rowcount == 1)


async def runs_with_status(
    conn: AsyncConnection,
    statuses: Iterable[RunStatus],
    *,
    project_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Runs of any project (or of ``project_id``) with one of ``statuses``, oldest
    first, each with its project and lease: what an operator lists."""
    query = sa.select(R.project_id, R.lease_owner, R.lease_expires_at, R.attempts, R.data).where(
        R.status.in_([str(s) for s in statuses])
    )
    if project_id is not None:
        query = query.where(R.project_id == project_id)
    rows = await conn.execute(query.order_by(R.seq).limit(limit))
    return [
        {
            "project_id": row.project_id,
            "lease_owner": row.lease_owner,
            "lease_expires_at": row.lease_expires_at,
            "attempts": int(row.attempts),
            "run": dict(row.data),
        }
        for row in rows
    ]


async def find_run(conn: AsyncConnection, run_id: str) -> tuple[str, dict[str, Any]] | None:
    """A run of any project, with its project id; ``None`` when there is none."""
    row = (await _RUN_ROW.execute(conn, {"run_id": run_id})).first()
    return None if row is None else (str(row.project_id), dict(row.data))
