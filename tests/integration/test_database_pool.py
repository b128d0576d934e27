"""PostgreSQL's pooled connections: one idle in the pool a while is pinged before
use, and replaced when the server closed it meanwhile; one used a moment ago is
handed out without a ping (three round trips on asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from tests.support.servers import PG_ADMIN_URL, postgres_database
from threadline.storage import db as db_module
from threadline.storage.db import Database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from postgres_database()


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url)
    try:
        yield database
    finally:
        await database.dispose()


async def backend_pid(database: Database) -> int:
    async with database.read() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_closed_in_the_pool_is_replaced(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await backend_pid(pg)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first) is True
    finally:
        await admin.close()
    second = await backend_pid(pg)  # no error: the dead one was pinged and dropped
    assert second != first


async def test_only_a_connection_idle_a_while_is_pinged(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    ping = AsyncAdapt_asyncpg_connection.ping

    def counted(self: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(self)
        ping(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    pid = await backend_pid(pg)
    assert await backend_pid(pg) == pid  # the same connection, back at once
    assert pings == []
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert await backend_pid(pg) == pid
    assert len(pings) == 1


async def test_the_connection_given_back_last_is_handed_out_next(pg: Database) -> None:
    # A burst opens three connections; given back one after another, the one given
    # back last is the one used next, and again after that: under light load the
    # others stay idle instead of taking turns, each turn pinged once idle a while.
    opened: list[int] = []
    async with pg.read() as first, pg.read() as second, pg.read() as third:
        for conn in (first, second, third):
            opened.append(
                int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())
            )
    # Given back in reverse order of opening (the context managers unwind): the
    # first one opened went back last.
    assert len(set(opened)) == 3
    assert [await backend_pid(pg) for _ in range(4)] == [opened[0]] * 4
