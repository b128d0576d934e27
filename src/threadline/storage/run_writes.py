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

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.storage import tables
from threadline.storage.db import Database
from threadline.storage.prepared import Prepared
from threadline.storage.runs import (
    RUN_ROW,
    insert_new,
    inserts_from,
    new_params,
    save_message,
    save_step,
)

R = tables.runs.c
_version = sa.cast(sa.literal_column("runs.xmin"), sa.Text)
_READ = Prepared(
    sa.select(*RUN_ROW, _version.label("version")).where(R.id == sa.bindparam("run_id"))
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
    await insert_new(conn, project_id, output.new)
    for kind, data in output.saved:
        if kind == "step":
            await save_step(conn, project_id, data)
        else:
            await save_message(conn, data)


async def write_unlocked(
    db: Database,
    run_id: str,
    plan: Callable[[Any], RunWrite | None],
    before: Callable[[AsyncConnection, str], Awaitable[None]] | None = None,
) -> bool:
    """Read the run's row without locking it, ``plan`` a write from it (the row has
    ``runs.lock_run``'s fields), and make that write in one statement if the row is
    still the version read; ``before`` (with the connection and the run's project),
    once planned, runs on the same connection in autocommit before the write. False
    when nothing was written: there is no such run, ``plan`` declined (``None``), the
    row changed meanwhile, or the database is SQLite (whose write transactions are
    local calls made one at a time: there the locked way costs no round trips)."""
    if db.is_sqlite:
        return False
    async with db.single_write() as conn:
        row = (await _READ.execute(conn, {"run_id": run_id})).first()
        if row is None:
            return False
        write = plan(row)
        if write is None:
            return False
        if before is not None:
            await before(conn, str(row.project_id))
        query = _if_unchanged(write)
        params = {
            "_run_id": run_id,
            "_seen": str(row.status),
            "_version": row.version,
            "run_data": write.run,
            "run_status": write.run["status"],
            **{f"set_{name}": value for name, value in write.columns.items()},
            **_save_params(write.output.saved),
            **new_params(write.output.new),
        }
        return (await query.execute(conn, params)).first() is not None


def _save_params(saved: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for position, (_kind, data) in enumerate(saved):
        params[f"save_{position}_id"] = data["id"]
        params[f"save_{position}_data"] = data
    return params


def _if_unchanged(write: RunWrite) -> Prepared:
    """The run's UPDATE on the condition that its row is the version read, and the
    output's statements only if that UPDATE matched: one row back if it did."""
    return _build(
        tuple(sorted(write.columns)),
        tuple(kind for kind, _data in write.output.saved),
        tuple(kind for kind, _data in write.output.new),
    )


# Built once per shape: the columns set, the kinds of objects saved and inserted
# (building a statement, and its cache key, costs more than its round trip). No
# parameter is named after a column: SQLAlchemy would add it to each UPDATE's SET.
@functools.cache
def _build(columns: tuple[str, ...], saved: tuple[str, ...], new: tuple[str, ...]) -> Prepared:
    values: dict[str, Any] = {
        "data": sa.bindparam("run_data", type_=R.data.type),
        "status": sa.bindparam("run_status", type_=R.status.type),
    }
    values.update({name: sa.bindparam(f"set_{name}", type_=R[name].type) for name in columns})
    moved = (
        tables.runs.update()
        .where(
            R.id == sa.bindparam("_run_id"),
            R.status == sa.bindparam("_seen"),
            _version == sa.bindparam("_version"),
        )
        .values(values)
        .returning(R.project_id)
        .cte("moved")
    )
    matched = sa.select(moved.c.project_id).exists()
    saves = []
    for position, kind in enumerate(saved):
        table = tables.run_steps if kind == "step" else tables.messages
        save = (
            table.update()
            .where(table.c.id == sa.bindparam(f"save_{position}_id"), matched)
            .values(data=sa.bindparam(f"save_{position}_data", type_=table.c.data.type))
            .returning(table.c.id)
        )
        saves.append(save.cte(f"saved_{position}"))
    return Prepared(sa.select(moved.c.project_id).add_cte(*saves, *inserts_from(moved, new)))
