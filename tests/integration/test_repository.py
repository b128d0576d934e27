"""The storage layer on both engines: ``Database`` transactions and migrations, and
the ``Repository`` every object table shares (scoping, cursors, cascades)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from threadline.domain.pages import PageParams
from threadline.errors import InvalidRequestError, NotFoundError
from threadline.storage import tables
from threadline.storage.db import Database
from threadline.storage.repository import Repository
from threadline.storage.sqlite_fast import inline as inline_sqlite

assistants = Repository(tables.assistants, "assistant")
threads = Repository(tables.threads, "thread")
messages = Repository(tables.messages, "message")

CREATED_AT = 1_700_000_000  # every object below is "created in the same second"


def obj(object_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": object_id, "created_at": CREATED_AT, **fields}


async def insert_assistants(db: Database, project: str, count: int) -> list[str]:
    ids = [f"asst_{project}_{i:02d}" for i in range(count)]
    async with db.write() as conn:
        for object_id in ids:
            await assistants.insert(conn, project, obj(object_id, name=object_id))
    return ids


async def page_ids(db: Database, project: str, **params: Any) -> tuple[list[str], bool]:
    async with db.read() as conn:
        page = await assistants.page(conn, project, PageParams(**params))
    return [row["id"] for row in page.data], page.has_more


async def count(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar())


async def test_migrate_is_idempotent(db: Database) -> None:
    await db.migrate()
    await insert_assistants(db, "p", 1)
    await db.migrate()
    assert await count(db, tables.assistants) == 1


async def test_insert_get_replace_delete(db: Database) -> None:
    async with db.write() as conn:
        await assistants.insert(conn, "p", obj("asst_1", name="first", metadata={"k": "v"}))
    async with db.read() as conn:
        got = await assistants.get(conn, "p", "asst_1")
    assert got == obj("asst_1", name="first", metadata={"k": "v"})

    async with db.write() as conn:
        await assistants.replace(conn, "p", {**got, "name": "second"})
    async with db.read() as conn:
        assert (await assistants.get(conn, "p", "asst_1"))["name"] == "second"

    async with db.write() as conn:
        await assistants.delete(conn, "p", "asst_1")
    async with db.read() as conn:
        assert await assistants.find(conn, "p", "asst_1") is None
        with pytest.raises(NotFoundError, match="No assistant found with id 'asst_1'"):
            await assistants.get(conn, "p", "asst_1")
    with pytest.raises(NotFoundError):
        async with db.write() as conn:
            await assistants.delete(conn, "p", "asst_1")


async def test_every_call_is_scoped_by_project(db: Database) -> None:
    await insert_assistants(db, "a", 1)
    async with db.read() as conn:
        assert await assistants.find(conn, "b", "asst_a_00") is None
        with pytest.raises(NotFoundError):
            await assistants.get(conn, "b", "asst_a_00")
    with pytest.raises(NotFoundError):
        async with db.write() as conn:
            await assistants.replace(conn, "b", obj("asst_a_00", name="stolen"))
    with pytest.raises(NotFoundError):
        async with db.write() as conn:
            await assistants.delete(conn, "b", "asst_a_00")
    assert await page_ids(db, "b") == ([], False)
    with pytest.raises(InvalidRequestError) as caught:
        await page_ids(db, "b", after="asst_a_00")
    assert caught.value.param == "after"
    async with db.read() as conn:
        assert (await assistants.get(conn, "a", "asst_a_00"))["name"] == "asst_a_00"


async def test_a_failed_write_transaction_keeps_nothing(db: Database) -> None:
    async def insert_then_fail() -> None:
        async with db.write() as conn:
            await assistants.insert(conn, "p", obj("asst_1"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await count(db, tables.assistants) == 0


async def test_writes_go_on_after_a_failed_or_cancelled_one(db: Database) -> None:
    """(SQLite's write transactions share one connection.) Whatever ended the one
    before (an error, a cancel while it waited, a nested write refused), the next
    one starts clean and sees only what was committed."""

    async def insert_then_fail(through_sqlalchemy: bool) -> None:
        async with db.write() as conn:
            await assistants.insert(conn, "p", obj("asst_failed"))
            if through_sqlalchemy:  # a statement built for this call joins the transaction
                await conn.execute(tables.assistants.update().values(created_at=CREATED_AT + 1))
            raise RuntimeError("boom")

    for through_sqlalchemy in (False, True):
        with pytest.raises(RuntimeError):
            await insert_then_fail(through_sqlalchemy)

    inserted = asyncio.Event()

    async def insert_then_wait() -> None:
        async with db.write() as conn:
            await assistants.insert(conn, "p", obj("asst_cancelled"))
            inserted.set()
            await asyncio.Event().wait()

    waiting = asyncio.create_task(insert_then_wait())
    await inserted.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    async def nested() -> None:
        async with db.write() as conn:
            await assistants.insert(conn, "p", obj("asst_outer"))
            async with db.write():
                pass

    if db.fast_path:  # one writer at a time: a nested one would wait for itself
        with pytest.raises(RuntimeError, match="cannot open another"):
            await nested()

    await insert_assistants(db, "p", 2)
    assert await page_ids(db, "p", order="asc") == (["asst_p_00", "asst_p_01"], False)


@pytest.mark.parametrize("through_sqlalchemy", [False, True])
async def test_a_write_whose_commit_fails_leaves_the_next_one_clean(
    db: Database, through_sqlalchemy: bool
) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite: a deferred foreign key fails the COMMIT itself")
    if not through_sqlalchemy and not db.fast_path:
        pytest.skip("only the fast path runs statements on sqlite3 itself")

    async def orphan_found_at_commit() -> None:
        async with db.write() as conn:
            pragma = "PRAGMA defer_foreign_keys = ON"
            if through_sqlalchemy:
                await conn.exec_driver_sql(pragma)
            else:
                sqlite = inline_sqlite.sqlite_of(conn)
                assert sqlite is not None
                sqlite.execute(pragma)
            await messages.insert(conn, "p", obj("msg_orphan"), thread_id="thread_none")

    with pytest.raises(sa.exc.IntegrityError):
        await orphan_found_at_commit()
    await insert_assistants(db, "p", 1)
    assert await count(db, tables.messages) == 0
    assert await count(db, tables.assistants) == 1


async def test_reads_see_each_commit_and_may_overlap(db: Database) -> None:
    """(SQLite's reads share one connection when it is free.) Each read sees what
    was committed before it began, also after a read that failed; a read that
    begins while another waits in the middle gets a connection of its own and
    neither disturbs the other."""
    await insert_assistants(db, "p", 1)
    assert await count(db, tables.assistants) == 1

    async def read_then_fail() -> None:
        async with db.read() as conn:
            await assistants.get(conn, "p", "asst_p_00")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await read_then_fail()
    async with db.write() as conn:
        await assistants.insert(conn, "p", obj("asst_second"))
    assert await count(db, tables.assistants) == 2

    first_read = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_reader() -> tuple[int, int]:
        async with db.read() as conn:
            before = (await assistants.page(conn, "p", PageParams())).data
            first_read.set()
            await go_on.wait()
            after = (await assistants.page(conn, "p", PageParams())).data
        return len(before), len(after)

    slow = asyncio.create_task(slow_reader())
    await first_read.wait()
    async with db.write() as conn:
        await assistants.insert(conn, "p", obj("asst_third"))
    assert await count(db, tables.assistants) == 3  # a read beside the slow one
    go_on.set()
    # SQLite: one snapshot for the whole read; PostgreSQL (read committed): one per
    # statement.
    assert await slow == ((2, 2) if db.is_sqlite else (2, 3))
    assert await count(db, tables.assistants) == 3


async def test_pages_in_both_orders_with_cursors(db: Database) -> None:
    ids = await insert_assistants(db, "p", 7)  # same created_at: order comes from seq
    newest_first = ids[::-1]

    assert await page_ids(db, "p") == (newest_first, False)
    assert await page_ids(db, "p", order="asc") == (ids, False)
    assert await page_ids(db, "p", limit=3) == (newest_first[:3], True)
    assert await page_ids(db, "p", limit=7) == (newest_first, False)

    # after: the page following a cursor, in either order
    assert await page_ids(db, "p", limit=3, after=newest_first[2]) == (newest_first[3:6], True)
    assert await page_ids(db, "p", limit=3, after=newest_first[5]) == (newest_first[6:], False)
    assert await page_ids(db, "p", order="asc", limit=2, after=ids[1]) == (ids[2:4], True)
    assert await page_ids(db, "p", order="asc", after=ids[-1]) == ([], False)

    # before: the page just before a cursor, still in the requested order
    assert await page_ids(db, "p", limit=2, before=newest_first[4]) == (newest_first[2:4], True)
    assert await page_ids(db, "p", limit=5, before=newest_first[2]) == (newest_first[:2], False)
    assert await page_ids(db, "p", order="asc", limit=2, before=ids[5]) == (ids[3:5], True)
    assert await page_ids(db, "p", order="asc", before=ids[0]) == ([], False)

    # both: the objects strictly between them
    between = await page_ids(db, "p", order="asc", after=ids[1], before=ids[5])
    assert between == (ids[2:5], False)


async def test_walking_pages_visits_every_object_once(db: Database) -> None:
    ids = await insert_assistants(db, "p", 11)
    for order in ("asc", "desc"):
        seen: list[str] = []
        after = None
        while True:
            page, more = await page_ids(db, "p", order=order, limit=4, after=after)
            seen += page
            if not more:
                break
            after = page[-1]
        assert seen == (ids if order == "asc" else ids[::-1])


async def test_unknown_cursor_is_a_bad_request(db: Database) -> None:
    await insert_assistants(db, "p", 2)
    for cursor in ("after", "before"):
        with pytest.raises(InvalidRequestError) as caught:
            await page_ids(db, "p", **{cursor: "asst_nope"})
        assert caught.value.param == cursor
        assert caught.value.code == "invalid_cursor"


async def test_scope_columns_filter_gets_and_pages(db: Database) -> None:
    async with db.write() as conn:
        for thread_id in ("thread_1", "thread_2"):
            await threads.insert(conn, "p", obj(thread_id))
        await messages.insert(conn, "p", obj("msg_1"), thread_id="thread_1")
        await messages.insert(conn, "p", obj("msg_2"), thread_id="thread_1", run_id="run_1")
        await messages.insert(conn, "p", obj("msg_3"), thread_id="thread_2", run_id="run_1")
    async with db.read() as conn:
        in_one = await messages.page(conn, "p", PageParams(order="asc"), thread_id="thread_1")
        by_run = await messages.page(conn, "p", PageParams(), thread_id="thread_1", run_id="run_1")
        assert await messages.find(conn, "p", "msg_3", thread_id="thread_1") is None
        with pytest.raises(NotFoundError):
            await messages.get(conn, "p", "msg_3", thread_id="thread_1")
    assert [m["id"] for m in in_one.data] == ["msg_1", "msg_2"]
    assert [m["id"] for m in by_run.data] == ["msg_2"]


async def test_deleting_a_thread_deletes_its_messages(db: Database) -> None:
    async with db.write() as conn:
        for thread_id in ("thread_1", "thread_2"):
            await threads.insert(conn, "p", obj(thread_id))
        for i in range(3):
            await messages.insert(conn, "p", obj(f"msg_1{i}"), thread_id="thread_1")
        await messages.insert(conn, "p", obj("msg_2"), thread_id="thread_2")
    async with db.write() as conn:
        await threads.delete(conn, "p", "thread_1")
    async with db.read() as conn:
        rows = await conn.execute(sa.select(tables.messages.c.id))
        assert [row.id for row in rows] == ["msg_2"]


async def test_a_message_needs_an_existing_thread(db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        async with db.write() as conn:
            await messages.insert(conn, "p", obj("msg_1"), thread_id="thread_missing")
    assert await count(db, tables.messages) == 0


async def test_concurrent_read_modify_write_loses_no_update(db: Database) -> None:
    async with db.write() as conn:
        await assistants.insert(conn, "p", obj("asst_counter", metadata={"n": "0"}))

    async def increment() -> None:
        async with db.write() as conn:
            data = await assistants.get(conn, "p", "asst_counter")
            await asyncio.sleep(0)  # let the others read the same value if they can
            data["metadata"] = {"n": str(int(data["metadata"]["n"]) + 1)}
            await assistants.replace(conn, "p", data)

    await asyncio.gather(*(increment() for _ in range(50)))
    async with db.read() as conn:
        assert (await assistants.get(conn, "p", "asst_counter"))["metadata"] == {"n": "50"}
