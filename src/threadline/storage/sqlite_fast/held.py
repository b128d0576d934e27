"""Held SQLite connections: one per event loop for write transactions (taken in
turn, first come first served) and one for reads, each kept open between the
transactions that use it, which begin and end on ``sqlite3`` itself.

Taking a connection from SQLAlchemy's pool and giving it back, and SQLAlchemy's
transaction bookkeeping, cost more than most transactions' statements (an empty
write transaction 157 → 11 µs, an empty read 143 → 12 µs on a 2-core host).
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from threadline.storage.sqlite_fast import inline

_T = TypeVar("_T")


def of_this_loop(
    per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _T], make: Callable[[], _T]
) -> _T:
    """The running event loop's entry of ``per_loop``, made the first time."""
    loop = asyncio.get_running_loop()
    found = per_loop.get(loop)
    if found is None:
        found = per_loop[loop] = make()
    return found


@asynccontextmanager
async def _sqlite_transaction(
    conn: AsyncConnection, sqlite: sqlite3.Connection, begin: str
) -> AsyncIterator[None]:
    """A transaction begun and ended on ``sqlite3`` itself: SQLAlchemy's
    transaction bookkeeping cost more than the statements of most transactions
    (``prepared`` runs them on ``sqlite3`` too). A statement that goes through
    SQLAlchemy joins it (see ``_on_begin``); it is then ended through SQLAlchemy."""
    _execute_on_sqlite(sqlite, begin)
    try:
        yield
        if conn.in_transaction():
            await conn.commit()
        if sqlite.in_transaction:
            _execute_on_sqlite(sqlite, "COMMIT")
    except BaseException:
        try:
            if conn.in_transaction():
                await conn.rollback()
        finally:
            if sqlite.in_transaction:
                sqlite.rollback()
        raise


def _execute_on_sqlite(sqlite: sqlite3.Connection, statement: str) -> None:
    """``statement`` on ``sqlite3``, its failure raised as SQLAlchemy would raise it."""
    try:
        sqlite.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc


class Held:
    """A SQLite connection kept open between the transactions that take turns on it
    (taking one from the pool and giving it back cost more than most transactions'
    statements); ``busy`` while one runs."""

    def __init__(self) -> None:
        self.busy = False
        self._conn: AsyncConnection | None = None

    @asynccontextmanager
    async def transaction(self, engine: AsyncEngine, begin: str) -> AsyncIterator[AsyncConnection]:
        """A transaction on the held connection (opened the first time)."""
        self.busy = True
        try:
            if self._conn is None:
                self._conn = await engine.connect()
            conn = self._conn
            sqlite = inline.sqlite_of(conn)
            try:
                if sqlite is None:
                    async with conn.begin():
                        yield conn
                else:
                    async with _sqlite_transaction(conn, sqlite, begin):
                        yield conn
            finally:
                if (
                    conn.invalidated
                    or conn.in_transaction()
                    or (sqlite is not None and sqlite.in_transaction)
                ):
                    await self.drop()  # not in a state to be used again
        finally:
            self.busy = False

    async def drop(self) -> None:
        """Close the held connection (the next transaction opens another)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class WriterTurn:
    """One SQLite writer at a time in this event loop, first come first served, on
    one held connection.

    A task that asks again while it holds the turn (a write transaction inside
    another) is refused at once: SQLite would only deadlock it until the busy timeout."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self.held = Held()

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            raise RuntimeError("a write transaction cannot open another one")
        await self._lock.acquire()
        self._holder = task

    async def __aexit__(self, *exc: object) -> None:
        self._holder = None
        self._lock.release()
