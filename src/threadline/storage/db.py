"""The database: one async engine, read and write transactions, migrations.

SQLite gets WAL, a busy timeout, foreign keys and ``BEGIN IMMEDIATE`` for every
write transaction, so that concurrent read-modify-write never loses an update.
PostgreSQL gets the same code over asyncpg; there, a write transaction locks the rows
it reads through a ``Repository`` (see ``in_write``) for the same guarantee.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from threadline.storage import inline_sqlite

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_WRITE = "threadline_write"
_T = TypeVar("_T")


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite://`` URLs and pick the async driver."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def in_write(conn: AsyncConnection) -> bool:
    """Whether ``conn`` runs a ``Database.write()`` transaction."""
    sync = conn.sync_connection
    return sync is not None and bool(sync.get_execution_options().get(_WRITE, False))


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            database = make_url(self.url).database
            if database and database != ":memory:" and "?" not in self.url:
                kwargs["async_creator"] = inline_sqlite.connector(database, timeout=30)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        # The same pool, its connections marked as writers from the start (setting
        # the option on each connection costs a call into the dialect each time).
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _WriterTurn] = (
            weakref.WeakKeyDictionary()
        )
        self._readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Held] = (
            weakref.WeakKeyDictionary()
        )
        if self.is_sqlite:
            self._prepare_sqlite()

    def _prepare_sqlite(self) -> None:
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take over transaction control from the driver so that BEGIN is ours.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(_WRITE, False)
            statement = "BEGIN IMMEDIATE" if write else "BEGIN"
            # Every transaction begins here: straight to SQLite when it can (a
            # statement through SQLAlchemy costs several times the BEGIN itself).
            driver = conn.connection.driver_connection
            if not isinstance(driver, inline_sqlite.InlineConnection):
                conn.exec_driver_sql(statement)
            elif not driver.sqlite.in_transaction:
                driver.sqlite.execute(statement)
            # else: SQLAlchemy joins the one a held connection began (``_Held``)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction: one snapshot on SQLite; on PostgreSQL (read
        committed) each statement sees what was committed before it began.

        On SQLite, a read that finds this event loop's shared read connection free
        takes it and begins and ends on ``sqlite3`` (see ``write``); one that does
        not (another read is waiting on something in the middle) takes one from
        the pool."""
        reader = _of_this_loop(self._readers, _Held) if self.is_sqlite else None
        if reader is None or reader.busy:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        async with reader.transaction(self.engine, "BEGIN") as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any error.

        No concurrent read-modify-write loses an update: SQLite runs one write
        transaction at a time (``BEGIN IMMEDIATE``); on PostgreSQL the rows a
        ``Repository`` reads in it are locked until commit (``FOR NO KEY UPDATE``).

        On SQLite the write transactions of this process also queue up here, in
        order, before ``BEGIN IMMEDIATE``: SQLite's own busy handler would make them
        poll for the lock with sleeps of up to 100 ms each. As they run one at a
        time, they share one connection, kept open between them: taking a
        connection from the pool and giving it back cost more than the
        transaction's own statements."""
        if not self.is_sqlite:
            async with self._write_engine.connect() as conn, conn.begin():
                yield conn
            return
        turn = _of_this_loop(self._writers, _WriterTurn)
        async with turn, turn.held.transaction(self._write_engine, "BEGIN IMMEDIATE") as conn:
            yield conn

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent, safe to race)."""
        if self.is_sqlite:
            path = self.engine.url.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        async with self.write() as conn:
            if not self.is_sqlite:
                # Several servers may start at once; one migrates, the others wait.
                await conn.execute(text("SELECT pg_advisory_xact_lock(74201)"))
            await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        turn = self._writers.pop(loop, None)
        if turn is not None:
            async with turn:
                await turn.held.drop()
        reader = self._readers.pop(loop, None)
        if reader is not None and not reader.busy:
            await reader.drop()
        await self.engine.dispose()


def _of_this_loop(
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


class _Held:
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
            sqlite = inline_sqlite.sqlite_of(conn)
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


class _WriterTurn:
    """One SQLite writer at a time in this event loop, first come first served, on
    one held connection.

    A task that asks again while it holds the turn (a write transaction inside
    another) is refused at once: SQLite would only deadlock it until the busy timeout."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self.held = _Held()

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            raise RuntimeError("a write transaction cannot open another one")
        await self._lock.acquire()
        self._holder = task

    async def __aexit__(self, *exc: object) -> None:
        self._holder = None
        self._lock.release()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _upgrade(sync_conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")
