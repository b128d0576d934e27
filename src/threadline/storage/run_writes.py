"""A run's move written with the steps and messages it finishes, two ways: in the
caller's write transaction, the run's row locked (``write_output``, then
``runs.save_run``); or, on PostgreSQL, without a lock (``write_unlocked``): the row
read in autocommit, then the whole write as one statement that takes effect only if
the row is still the version read.

The unlocked way is a compare-and-set on the row's version, PostgreSQL's ``xmin``
(the transaction that wrote it): any change to the row after it was read, committed
or still under way (a status move, a metadata update, a lease taken, renewed or
lost, tokens counted), gives the row a new version and the statement writes nothing,
neither the run nor its steps and messages; the caller then makes its move the
locked way, from the row as it then is. A move that was written is one the locked
way would have made from the same row, at the moment of the statement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.storage import tables
from threadline.storage.db import Database
from threadline.storage.runs import (
    insert_message,
    insert_step,
    inserts_from,
    save_message,
    save_step,
)
from threadline.storage.sqlite_fast.prepared import Prepared

R = tables.runs.c
_version = sa.cast(sa.literal_column("runs.xmin"), sa.Text)
_READ = Prepared(
    sa.select(
        R.id,
        R.project_id,
        R.status,
        R.lease_owner,
        R.attempts,
        R.prompt_tokens,
        R.completion_tokens,
        R.data,
        _version.label("version"),
    ).where(R.id == sa.bindparam("run_id"))
)


@dataclass
class Output:
    """The steps and messages a move writes besides the run: ``new`` ones to insert
    and ``saved`` ones to update, each ``("step" | "message", data)``. A new one is
    inserted as it is at the write (not also saved)."""

    new: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    saved: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class RunWrite:
    """A move planned from the run's row: its new object (with its status), the
    columns it sets besides ``data`` and ``status``, and its output."""

    run: dict[str, Any]
    columns: dict[str, Any]
    output: Output


async def write_output(conn: AsyncConnection, project_id: str, output: Output) -> None:
    """Write ``output`` in the caller's write transaction."""
    for kind, data in output.new:
        await (insert_step if kind == "step" else insert_message)(conn, project_id, data)
    for kind, data in output.saved:
        if kind == "step":
            await save_step(conn, project_id, data)
        else:
            await save_message(conn, data)


async def write_unlocked(db: Database, run_id: str, plan: Callable[[Any], RunWrite | None]) -> bool:
    """Read the run's row without locking it, ``plan`` a write from it (the row has
    ``runs.lock_run``'s fields), and make that write in one statement if the row is
    still the version read. False when nothing was written: there is no such run,
    ``plan`` declined (``None``), the row changed meanwhile, or the database is
    SQLite (whose write transactions are local calls made one at a time: there the
    locked way costs no round trips)."""
    if db.is_sqlite:
        return False
    async with db.single_write() as conn:
        row = (await _READ.execute(conn, {"run_id": run_id})).first()
        if row is None:
            return False
        write = plan(row)
        if write is None:
            return False
        query = _if_unchanged(run_id, row.version, str(row.status), write)
        return (await conn.execute(query)).first() is not None


def _if_unchanged(run_id: str, version: str, seen: str, write: RunWrite) -> sa.Select[Any]:
    """The run's UPDATE on the condition that its row is the version read, and the
    output's statements only if that UPDATE matched: one row back if it did."""
    moved = (
        tables.runs.update()
        .where(R.id == run_id, R.status == seen, _version == version)
        .values(data=write.run, status=write.run["status"], **write.columns)
        .returning(R.project_id)
        .cte("moved")
    )
    matched = sa.select(moved.c.project_id).exists()
    saves = []
    for position, (kind, data) in enumerate(write.output.saved):
        table = tables.run_steps if kind == "step" else tables.messages
        save = (
            table.update()
            .where(table.c.id == data["id"], matched)
            .values(data=data)
            .returning(table.c.id)
        )
        saves.append(save.cte(f"saved_{position}"))
    news = inserts_from(moved, write.output.new)
    return sa.select(moved.c.project_id).add_cte(*saves, *news)
