"""aiosqlite without its thread: each SQLite call runs at once, on the event loop.

aiosqlite hands every call (cursor, execute, fetchall, close, commit…) to a thread
of its own and waits for the answer: three or four hand-offs a statement, about a
hundred a run, each a thread switch plus a wake-up of the event loop, and far
slower than the call itself (a few microseconds on a local database in WAL mode).
``connector`` builds connections that keep aiosqlite's interface, so SQLAlchemy's
``aiosqlite`` dialect uses them unchanged, but run each call in place.

The price is that a call that waits for SQLite's lock waits on the event loop. In
WAL mode readers never wait, and ``Database.write`` lets one write transaction of
the process begin at a time, so only a writer in another process (the
``threadline keys`` command, say) can make ``BEGIN IMMEDIATE`` wait, for as long as
its own short transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection


class _RunInPlace:
    """Stands in for aiosqlite's request queue: runs each request as it is put."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An ``aiosqlite.Connection`` whose calls run on the calling thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunInPlace()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no thread to start

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection itself (``prepared`` runs statements on it)."""
        return self._conn


def sqlite_of(conn: AsyncConnection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``conn`` if it is an inline one."""
    sync = conn.sync_connection
    if sync is None:
        return None
    driver = sync.connection.driver_connection
    return driver.sqlite if isinstance(driver, InlineConnection) else None


def connector(database: str, timeout: float) -> Callable[[], Awaitable[InlineConnection]]:
    """An ``async_creator`` for SQLAlchemy: connections to ``database`` (a path)."""

    def connect() -> sqlite3.Connection:
        # Any thread may run the event loop that uses a pooled connection.
        return sqlite3.connect(database, timeout=timeout, check_same_thread=False)

    async def create() -> InlineConnection:
        connection = InlineConnection(connect)
        await connection
        return connection

    return create
