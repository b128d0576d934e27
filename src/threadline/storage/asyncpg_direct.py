"""A statement run on asyncpg under SQLAlchemy's connection, without SQLAlchemy's
execution machinery.

Through SQLAlchemy, a statement on PostgreSQL costs a greenlet switch, an execution
context, parameter and result processing and event dispatch around the driver call:
measured on two CPUs, a one-row SELECT by key took 0.59 ms of wall time and 0.46 ms
of CPU through SQLAlchemy against 0.22 and 0.17 ms on asyncpg itself. A run executes
about ten statements, so ``Prepared`` (``storage/prepared.py``) sends its statements
here when it can.

What is kept from SQLAlchemy's path, so that both read and write the same rows and
fail alike: the statement's text (compiled by SQLAlchemy's asyncpg dialect), the
connection's transaction (begun here exactly as the dialect begins it, on the first
statement; SQLAlchemy commits or rolls it back), the dialect's cache of prepared
statements, its JSON codecs (a JSON value goes as the text SQLAlchemy's JSON type
writes; a JSON column comes back decoded by the codec), and its errors (an asyncpg
error is raised as the ``sqlalchemy.exc`` error SQLAlchemy raises for it; a lost
connection is invalidated so that the pool does not hand it out again; a statement
the schema changed under drops the cached statements).

It leans on the asyncpg dialect's connection adapter (its lock, transaction and
statement cache), which SQLAlchemy does not document: the version is pinned, and
``tests/integration/test_prepared.py`` runs every path on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncConnection


def asyncpg_of(conn: AsyncConnection) -> AsyncAdapt_asyncpg_connection | None:
    """The dialect's adapter of the asyncpg connection under ``conn`` if a statement may
    run on it directly: a live asyncpg connection, on an engine that does not log SQL,
    in a transaction SQLAlchemy has begun or in autocommit. Outside both, SQLAlchemy
    would begin ("autobegin") a transaction of which it must know, so it runs there."""
    sync = conn.sync_connection
    if sync is None or sync.engine.echo or sync.invalidated or sync.closed:
        return None
    adapted = sync.connection.dbapi_connection
    if not isinstance(adapted, AsyncAdapt_asyncpg_connection):
        return None
    if adapted.autocommit or sync.in_transaction():
        return adapted
    return None


async def fetch(
    conn: AsyncConnection,
    adapted: AsyncAdapt_asyncpg_connection,
    sql: str,
    values: Sequence[Any],
) -> tuple[list[Any], int]:
    """Runs ``sql`` with ``values`` on ``adapted``: its rows (asyncpg records) and the
    count of rows it changed or returned (-1 where the status does not say)."""
    adapter: Any = adapted  # the dialect's adapter is not typed
    dialect: Any = conn.dialect
    try:
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()
            statement, _ = await adapter._prepare(sql, dialect._invalidate_schema_cache_asof)
            rows = await statement.fetch(*values)
            status = statement.get_statusmsg()
    except Exception as error:
        await _raise_as_sqlalchemy(conn, adapted, sql, values, error)
    return rows, _rowcount(status)


def _rowcount(status: str | None) -> int:
    # "INSERT 0 1", "UPDATE 3", "SELECT 2", "DELETE 0": the last number, as the dialect reads it.
    if not status:
        return -1
    head, _, count = status.rpartition(" ")
    return int(count) if head and count.isdigit() else -1


async def _raise_as_sqlalchemy(
    conn: AsyncConnection,
    adapted: AsyncAdapt_asyncpg_connection,
    sql: str,
    values: Sequence[Any],
    error: Exception,
) -> NoReturn:
    dialect: Any = conn.dialect  # the dialect's and the adapter's internals are not typed
    adapter: Any = adapted
    dbapi = dialect.loaded_dbapi
    try:
        adapter._handle_exception(error)  # raises the dialect's DB-API error for it
    except dbapi.Error as translated:
        if isinstance(translated, (dbapi.InvalidCachedStatementError, dbapi.InternalServerError)):
            # As SQLAlchemy's execution does: the schema changed under the cached
            # statements (a migration), so every connection prepares them again.
            dialect._invalidate_schema_cache()
        disconnected = dialect.is_disconnect(translated, adapter, None)
        wrapped = sa.exc.DBAPIError.instance(
            sql, tuple(values), translated, dbapi.Error,
            dialect=dialect, connection_invalidated=disconnected,
        )  # fmt: skip
        if disconnected:
            await conn.invalidate(wrapped)
        raise wrapped from error
    raise error  # not one the dialect translates: as it is
