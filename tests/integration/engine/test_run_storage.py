"""Run storage (``storage/runs.py``): the compare-and-set save, leases, and the
cleanup of a lost attempt, on both engines."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from threadline.engine.output import TurnOutput
from threadline.errors import ConflictError
from threadline.storage import runs as store
from threadline.storage import tables


async def test_save_is_a_compare_and_set_on_the_status(kit: Any) -> None:
    run = await kit.new_run()
    async with kit.db.write() as conn:
        row = await store.lock_run(conn, run["id"])
        await store.save_run(conn, dict(row.data, status="cancelling"), "queued")
    with pytest.raises(ConflictError):
        async with kit.db.write() as conn:
            await store.save_run(conn, dict(row.data, status="cancelled"), "queued")
    assert await kit.status(run["id"]) == "cancelling"


async def test_only_the_holder_renews_a_lease_of_a_running_run(kit: Any) -> None:
    run = await kit.new_run()
    async with kit.db.write() as conn:
        assert not await store.renew_lease(conn, run["id"], "wrk_a", 1.0)  # queued
    await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, _nothing)
    async with kit.db.write() as conn:
        assert await store.renew_lease(conn, run["id"], "wrk_a", kit.clock.time() + 30)
        assert not await store.renew_lease(conn, run["id"], "wrk_b", kit.clock.time() + 30)
    assert (await kit.row(run["id"])).lease_expires_at == kit.clock.time() + 30


async def test_a_lost_attempts_unfinished_output_is_forgotten(kit: Any) -> None:
    run = await kit.new_run({"text": "kept"})
    await kit.executor.execute(run["id"])
    [kept] = await kit.messages(run["id"])
    unfinished = dict(kept, id="msg_unfinished", status="in_progress")
    async with kit.db.write() as conn:
        await store.insert_message(conn, kit.project, unfinished)
        await store.delete_unfinished_output(conn, run["id"])
    assert [m["id"] for m in await kit.messages(run["id"])] == [kept["id"]]


async def test_ids_with_status_filters_by_lease_and_expiry(kit: Any) -> None:
    queued, running = await kit.new_run(), await kit.new_run()
    await kit.lifecycle.claim(running["id"], "wrk_a", kit.clock.time() + 15, _nothing)
    async with kit.db.read() as conn:
        assert await store.run_ids_with_status(conn, {"queued"}) == [queued["id"]]
        lapsed = await store.run_ids_with_status(
            conn, {"in_progress"}, lease_before=kit.clock.time() + 16
        )
        live = await store.run_ids_with_status(conn, {"in_progress"}, lease_before=kit.clock.time())
    assert (lapsed, live) == ([running["id"]], [])


async def _nothing(*_args: Any) -> list[Any]:
    return []


async def test_a_turns_first_output_is_stored_only_while_its_worker_holds_the_run(
    kit: Any,
) -> None:
    """The message and its step go in (one statement on PostgreSQL) only if the run
    is still in progress under this worker's lease; else nothing is stored."""
    run = await kit.new_run()
    claimed = await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, _nothing)
    stranger = TurnOutput(claimed.run, kit.db, kit.bus, "wrk_b", [])
    with pytest.raises(ConflictError):
        await stranger.text("not mine")
    assert (await kit.messages(run["id"]), await kit.steps(run["id"])) == ([], [])
    holder = TurnOutput(claimed.run, kit.db, kit.bus, "wrk_a", [])
    await holder.text("Hello")
    [message] = await kit.messages(run["id"])
    [step] = await kit.steps(run["id"])
    assert (message["status"], message["run_id"], message["thread_id"]) == (
        "in_progress",
        run["id"],
        run["thread_id"],
    )
    assert step["step_details"]["message_creation"]["message_id"] == message["id"]
    async with kit.db.read() as conn:
        rows = await conn.execute(
            sa.select(tables.messages.c.project_id, tables.messages.c.created_at).where(
                tables.messages.c.id == message["id"]
            )
        )
        assert rows.one() == (kit.project, message["created_at"])
