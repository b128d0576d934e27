"""The database: one async engine, read and write transactions, migrations.

SQLite gets WAL, a busy timeout, foreign keys and ``BEGIN IMMEDIATE`` for every
write transaction, so that concurrent read-modify-write never loses an update.
PostgreSQL gets the same code over asyncpg; there, a write transaction locks the rows
it reads through a ``Repository`` (see ``in_write``) for the same guarantee.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from threadline.storage.sqlite_fast import inline
from threadline.storage.sqlite_fast.held import Held, WriterTurn, of_this_loop

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_WRITE = "threadline_write"
PING_AFTER_IDLE_SECONDS = 1.0
"""A PostgreSQL connection idle in the pool longer than this is pinged before use."""
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
    def __init__(self, url: str, *, echo: bool = False, fast_path: bool = True) -> None:
        """``fast_path``: on SQLite, take the ``sqlite_fast`` path (in-place calls,
        held connections, statements straight on ``sqlite3``); off, SQLite runs on
        plain aiosqlite through SQLAlchemy, as PostgreSQL does on asyncpg."""
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.fast_path = fast_path and self.is_sqlite
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            database = make_url(self.url).database
            if self.fast_path and database and database != ":memory:" and "?" not in self.url:
                kwargs["async_creator"] = inline.connector(database, timeout=30)
        else:
            # Up to 30 connections, each kept once opened: SQLAlchemy closes an
            # "overflow" connection as soon as it is checked in, so a pool of 10 with
            # 20 overflow opened and closed a connection (a TCP handshake, an SSL
            # probe, a backend process forked) for each transaction past the tenth.
            # Handed out last in, first out: the connection given back last is the
            # one taken next, so under light load a few connections do all the work
            # and are never idle long enough to be pinged (three round trips on
            # asyncpg), while the rest sit idle until a burst needs them. First in,
            # first out, every connection a burst opened went round in turn, and
            # most transactions were pinged.
            kwargs.update(pool_size=30, max_overflow=0, pool_use_lifo=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        # The same pool, its connections marked as writers from the start (setting
        # the option on each connection costs a call into the dialect each time).
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._autocommit_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WriterTurn] = (
            weakref.WeakKeyDictionary()
        )
        self._readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Held] = (
            weakref.WeakKeyDictionary()
        )
        if self.is_sqlite:
            self._prepare_sqlite()
        else:
            self._prepare_postgres()

    def _prepare_postgres(self) -> None:
        # A connection that sat in the pool may have been closed by the server (a
        # restart, an idle timeout): such a one is pinged before it is handed out,
        # and replaced if the ping fails. Not every one, as ``pool_pre_ping`` does:
        # on asyncpg a ping is three round trips (BEGIN, ``;``, ROLLBACK) before each
        # transaction, more than most of the transactions themselves.
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "checkin")
        def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            record.info["idle_since"] = time.monotonic()

        @event.listens_for(sync_engine, "checkout")
        def _on_checkout(
            dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
        ) -> None:
            since = record.info.get("idle_since")
            if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
                return  # new, or in use a moment ago
            try:
                dbapi_connection.ping()
            except Exception as exc:
                raise DisconnectionError(f"a pooled connection is gone: {exc}") from exc

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
            if not isinstance(driver, inline.InlineConnection):
                conn.exec_driver_sql(statement)
            elif not driver.sqlite.in_transaction:
                driver.sqlite.execute(statement)
            # else: SQLAlchemy joins the one a held connection began (``Held``)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction: one snapshot on SQLite; on PostgreSQL each statement
        is a transaction of its own (autocommit), and sees what was committed
        before it began.

        On SQLite, a read that finds this event loop's shared read connection free
        takes it and begins and ends on ``sqlite3`` (see ``write``); one that does
        not (another read is waiting on something in the middle) takes one from
        the pool."""
        if not self.is_sqlite:
            # Each statement is its own transaction: BEGIN and COMMIT around them
            # would be two more round trips and no more consistency.
            async with self._autocommit_engine.connect() as conn:
                yield conn
            return
        reader = of_this_loop(self._readers, Held) if self.fast_path else None
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
        if not self.fast_path:
            async with self._write_engine.connect() as conn, conn.begin():
                yield conn
            return
        turn = of_this_loop(self._writers, WriterTurn)
        async with turn, turn.held.transaction(self._write_engine, "BEGIN IMMEDIATE") as conn:
            yield conn

    @asynccontextmanager
    async def single_write(self) -> AsyncIterator[AsyncConnection]:
        """For one writing statement, atomic by itself: on PostgreSQL it runs in
        autocommit (no BEGIN and COMMIT round trips); on SQLite it is a ``write``."""
        if self.is_sqlite:
            async with self.write() as conn:
                yield conn
            return
        async with self._autocommit_engine.connect() as conn:
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

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

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


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _upgrade(sync_conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")
