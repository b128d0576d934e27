"""``Prepared`` statements on both engines: straight on ``sqlite3`` inside a SQLite
transaction, on asyncpg on PostgreSQL, through SQLAlchemy elsewhere; every path reads
and writes the same rows."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.servers import PG_ADMIN_URL
from threadline.storage import db as db_module
from threadline.storage import tables
from threadline.storage.db import Database
from threadline.storage.prepared import Prepared, UnsupportedType

TABLE = tables.threads
T = TABLE.c
M = tables.messages
INSERT_THREAD = Prepared(TABLE.insert())
THREAD_DATA = Prepared(
    sa.select(T.id, T.created_at, T.data).where(T.id == sa.bindparam("thread_id"))
)
SET_DATA = Prepared(TABLE.update().where(T.id == sa.bindparam("thread_id")))
# Values given when the statement was built (rendered as parameters, not text).
NEWEST_OF = Prepared(
    sa.select(T.id).where(T.project_id == "p", T.created_at >= 0).order_by(T.seq.desc()).limit(1)
)


def thread(thread_id: str, **data: object) -> dict[str, object]:
    return {"id": thread_id, "project_id": "p", "created_at": 7, "data": {"id": thread_id, **data}}


async def test_rows_written_and_read_back_with_their_json(db: Database) -> None:
    nested = {"metadata": {"k": "v"}, "tools": [{"type": "file_search"}], "note": "é\u2028"}
    async with db.write() as conn:
        written = await INSERT_THREAD.execute(conn, thread("thread_a", **nested))
    assert written.rowcount == 1
    async with db.read() as conn:
        row = (await THREAD_DATA.execute(conn, {"thread_id": "thread_a"})).first()
        plain = (await conn.execute(sa.select(T.data).where(T.id == "thread_a"))).scalar()
    assert (row.id, row.created_at) == ("thread_a", 7)
    assert row.data == {"id": "thread_a", **nested}
    assert row[2] == row.data
    assert plain == row.data  # SQLAlchemy reads what was written here


async def test_update_counts_the_rows_it_changed(db: Database) -> None:
    async with db.write() as conn:
        await INSERT_THREAD.execute(conn, thread("thread_b"))
        changed = await SET_DATA.execute(conn, {"thread_id": "thread_b", "data": {"v": 2}})
        missed = await SET_DATA.execute(conn, {"thread_id": "thread_x", "data": {"v": 3}})
        # Another set of values is another statement: here the creation time too.
        both = await SET_DATA.execute(
            conn, {"thread_id": "thread_b", "data": {"v": 4}, "created_at": 9}
        )
    assert (changed.rowcount, missed.rowcount, both.rowcount) == (1, 0, 1)
    async with db.read() as conn:
        row = (await THREAD_DATA.execute(conn, {"thread_id": "thread_b"})).first()
        gone = (await THREAD_DATA.execute(conn, {"thread_id": "thread_x"})).first()
    assert (row.data, row.created_at, gone) == ({"v": 4}, 9, None)


async def test_values_given_at_build_time_are_used(db: Database) -> None:
    async with db.write() as conn:
        for name in ("thread_1", "thread_2"):
            await INSERT_THREAD.execute(conn, thread(name))
        newest = (await NEWEST_OF.execute(conn)).scalar()
    assert newest == "thread_2"


async def insert_in_one_transaction(
    db: Database, *rows: tuple[Prepared, dict[str, object]]
) -> None:
    async with db.write() as conn:
        for statement, values in rows:
            await statement.execute(conn, values)


async def test_a_failed_statement_raises_sqlalchemy_s_error_and_rolls_back(db: Database) -> None:
    await insert_in_one_transaction(db, (INSERT_THREAD, thread("thread_c")))
    # The second row's id is taken: neither is stored.
    duplicate = ((INSERT_THREAD, thread("thread_d")), (INSERT_THREAD, thread("thread_c")))
    with pytest.raises(sa.exc.IntegrityError):
        await insert_in_one_transaction(db, *duplicate)
    orphan = {"id": "msg_1", "project_id": "p", "created_at": 1, "data": {}, "thread_id": "t0"}
    with pytest.raises(sa.exc.IntegrityError):
        await insert_in_one_transaction(db, (Prepared(M.insert()), orphan))
    async with db.read() as conn:
        ids = (await conn.execute(sa.select(T.id).order_by(T.seq))).scalars().all()
    assert ids == ["thread_c"]


async def test_a_missing_parameter_is_refused(db: Database) -> None:
    with pytest.raises(sa.exc.SQLAlchemyError):
        async with db.read() as conn:
            await THREAD_DATA.execute(conn, {})


async def test_outside_a_transaction_it_goes_through_sqlalchemy(db: Database) -> None:
    async with db.engine.connect() as conn:
        await INSERT_THREAD.execute(conn, thread("thread_e"))
        await conn.commit()
    async with db.read() as conn:
        row = (await THREAD_DATA.execute(conn, {"thread_id": "thread_e"})).first()
    assert row.data == {"id": "thread_e"}


async def test_a_transaction_s_statements_skip_sqlalchemy_where_they_can(db: Database) -> None:
    through: list[str] = []

    @sa.event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def seen(*args: object) -> None:
        through.append(str(args[2]))

    async with db.write() as conn:
        await INSERT_THREAD.execute(conn, thread("thread_f"))
    async with db.read() as conn:  # on PostgreSQL: autocommit
        row = (await THREAD_DATA.execute(conn, {"thread_id": "thread_f"})).first()
    assert row.data == {"id": "thread_f"}
    statements = [sql.split()[0] for sql in through if not sql.startswith("BEGIN")]
    if db.fast_path or not db.is_sqlite:
        assert through == []
    else:
        assert statements == ["INSERT", "SELECT"]


async def test_a_transaction_begun_by_a_direct_statement_is_rolled_back_on_error(
    db: Database,
) -> None:

    async def fail_after_the_insert() -> None:
        async with db.write() as conn:
            await INSERT_THREAD.execute(conn, thread("thread_h"))
            raise RuntimeError("the caller fails after the statement")

    with pytest.raises(RuntimeError):
        await fail_after_the_insert()
    async with db.write() as conn:
        await INSERT_THREAD.execute(conn, thread("thread_i"))
    async with db.read() as conn:
        ids = (await conn.execute(sa.select(T.id).order_by(T.seq))).scalars().all()
    assert ids == ["thread_i"]


async def test_a_lost_postgres_connection_is_invalidated_not_reused(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.is_sqlite:
        pytest.skip("PostgreSQL's server ends the connection")
    # However slow the machine, the ended connection is handed out unpinged (a ping
    # would find it gone and replace it before any statement fails).
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    async with db.write() as conn:
        await INSERT_THREAD.execute(conn, thread("thread_j"))
        pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
    # The pool keeps that connection; end its server process (from outside the pool).
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    finally:
        await admin.close()

    async def read_until_it_fails() -> None:
        for _ in range(30):  # any pooled connection may be the one ended
            async with db.write() as conn:
                await THREAD_DATA.execute(conn, {"thread_id": "thread_j"})

    with pytest.raises(sa.exc.DBAPIError) as failed:
        await read_until_it_fails()
    assert failed.value.connection_invalidated
    for _ in range(30):  # every connection handed out now works
        async with db.read() as conn:
            row = (await THREAD_DATA.execute(conn, {"thread_id": "thread_j"})).first()
        assert row.data == {"id": "thread_j"}


async def test_a_statement_the_schema_changed_under_is_prepared_again(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("asyncpg's prepared statements")
    async with db.write() as conn:
        await INSERT_THREAD.execute(conn, thread("thread_k"))

    async def read(conn: AsyncConnection) -> object:
        async with conn.begin():
            return (await THREAD_DATA.execute(conn, {"thread_id": "thread_k"})).first()

    async with db.engine.connect() as conn:
        await read(conn)  # prepared on this connection, and kept
        async with db.engine.connect() as admin:  # a migration changes a column read
            await admin.execute(sa.text("ALTER TABLE threads ALTER COLUMN created_at TYPE integer"))
            await admin.commit()
        with pytest.raises(sa.exc.DBAPIError, match="cached statement"):
            await read(conn)
        row = await read(conn)
    assert row is not None
    assert row.created_at == 7


def test_types_the_fast_path_cannot_convert_are_refused_when_built() -> None:
    flags = sa.table("flags", sa.column("on", sa.Boolean), sa.column("at", sa.DateTime))
    with pytest.raises(UnsupportedType, match="'on'"):
        Prepared(sa.select(flags.c.on))
    with pytest.raises(UnsupportedType, match="'at'"):
        Prepared(sa.select(flags.c.at))


async def test_rows_are_the_same_type_on_every_path(db: Database) -> None:
    async with db.write() as conn:
        await INSERT_THREAD.execute(conn, thread("thread_g"))
        inside = (await THREAD_DATA.execute(conn, {"thread_id": "thread_g"})).first()
    async with db.engine.connect() as conn:  # outside a transaction: through SQLAlchemy
        outside = (await THREAD_DATA.execute(conn, {"thread_id": "thread_g"})).first()
    assert type(inside) is type(outside)
    assert inside == outside
    assert inside._fields == ("id", "created_at", "data")
