"""A run's creation (``storage/run_creates.py`` through ``RunService.create``), on
each engine: one active run per thread however the creations interleave, a 404 for
a missing thread or assistant, and the thread's messages read as the run is
stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from threadline.domain.pages import PageParams
from threadline.errors import NotFoundError, ThreadBusyError
from threadline.schemas.run import CreateRunRequest
from threadline.storage import objects, run_creates
from threadline.storage import runs as store

_ALL = PageParams(limit=100, order="asc", after=None, before=None)


def _request(assistant_id: str) -> CreateRunRequest:
    return CreateRunRequest.model_validate({"assistant_id": assistant_id})


def _run(run_id: str, thread_id: str, assistant_id: str) -> dict[str, Any]:
    return {
        "id": run_id,
        "object": "thread.run",
        "created_at": 1,
        "thread_id": thread_id,
        "assistant_id": assistant_id,
        "status": "queued",
        "expires_at": 10**10,
    }


async def _thread_runs(kit: Any, thread_id: str) -> list[str]:
    async with kit.db.read() as conn:
        page = await store.runs.page(conn, kit.project, _ALL, thread_id=thread_id)
    return [run["id"] for run in page.data]


async def test_a_busy_thread_refuses_a_second_run(kit: Any) -> None:
    first = await kit.new_run()
    with pytest.raises(ThreadBusyError) as refused:
        await kit.runs.create(kit.project, first["thread_id"], _request(first["assistant_id"]))
    assert refused.value.message.endswith(f"already has an active run {first['id']}.")
    assert refused.value.param == "thread_id"
    assert await _thread_runs(kit, first["thread_id"]) == [first["id"]]


async def test_racing_creations_on_one_thread_store_one_run(kit: Any) -> None:
    first = await kit.new_run()
    await kit.lifecycle.cancel(first["id"])
    await kit.lifecycle.finish_cancel(first["id"])
    req = _request(first["assistant_id"])
    outcomes = await asyncio.gather(
        *(kit.runs.create(kit.project, first["thread_id"], req) for _ in range(6)),
        return_exceptions=True,
    )
    made = [o["id"] for o in outcomes if isinstance(o, dict)]
    assert len(made) == 1
    assert all(isinstance(o, ThreadBusyError) for o in outcomes if not isinstance(o, dict))
    assert await _thread_runs(kit, first["thread_id"]) == [first["id"], *made]


async def test_a_creation_that_waited_for_the_thread_sees_the_run_stored_meanwhile(
    kit: Any,
) -> None:
    # The second creation opens the thread while the first holds it; whatever it
    # read before it got the thread, storing its run must refuse.
    first = await kit.new_run()
    thread_id, assistant_id = first["thread_id"], first["assistant_id"]
    await kit.lifecycle.cancel(first["id"])
    await kit.lifecycle.finish_cancel(first["id"])

    async def second() -> None:
        async with kit.db.write() as conn:
            seen = await run_creates.open_thread(conn, kit.project, thread_id, assistant_id)
            if seen.active_run is not None:
                raise ThreadBusyError.for_thread(thread_id, seen.active_run)
            await run_creates.insert_idle(conn, kit.project, _run("run_b", thread_id, assistant_id))

    async with kit.db.write() as conn:
        seen = await run_creates.open_thread(conn, kit.project, thread_id, assistant_id)
        assert seen.active_run is None
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # it waits for the thread
        await run_creates.insert_idle(conn, kit.project, _run("run_a", thread_id, assistant_id))
    with pytest.raises(ThreadBusyError):
        await waiting
    assert await _thread_runs(kit, thread_id) == [first["id"], "run_a"]


async def test_a_missing_thread_or_assistant_is_a_404(kit: Any) -> None:
    first = await kit.new_run()
    with pytest.raises(NotFoundError) as no_thread:
        await kit.runs.create(kit.project, "thread_x", _request(first["assistant_id"]))
    assert no_thread.value.message == "No thread found with id 'thread_x'."
    await kit.lifecycle.cancel(first["id"])
    await kit.lifecycle.finish_cancel(first["id"])
    with pytest.raises(NotFoundError) as no_assistant:
        await kit.runs.create(kit.project, first["thread_id"], _request("asst_x"))
    assert no_assistant.value.message == "No assistant found with id 'asst_x'."
    assert no_assistant.value.param == "assistant_id"
    # Another project's assistant and thread do not exist for this one.
    async with kit.db.write() as conn:
        seen = await run_creates.open_thread(
            conn, kit.project, first["thread_id"], first["assistant_id"]
        )
        assert seen.assistant is not None
        assert seen.assistant["id"] == first["assistant_id"]
        with pytest.raises(NotFoundError):
            await run_creates.open_thread(
                conn, "proj_other", first["thread_id"], first["assistant_id"]
            )
    async with kit.db.write() as conn:
        await objects.assistants.insert(conn, "proj_other", {"id": "asst_o", "created_at": 1})
        seen = await run_creates.open_thread(conn, kit.project, first["thread_id"], "asst_o")
        assert seen.assistant is None
    assert await _thread_runs(kit, first["thread_id"]) == [first["id"]]


async def test_the_thread_s_messages_come_back_with_the_stored_run(kit: Any) -> None:
    first = await kit.new_run()
    thread_id, assistant_id = first["thread_id"], first["assistant_id"]
    await kit.lifecycle.cancel(first["id"])
    await kit.lifecycle.finish_cancel(first["id"])
    async with kit.db.read() as conn:
        before = await store.thread_history(conn, thread_id, "run_none")
    added = dict(before[0], id="msg_added", created_at=2)
    async with kit.db.write() as conn:
        await store.insert_message(conn, kit.project, added)  # in the same transaction
        history = await run_creates.insert_idle(
            conn,
            kit.project,
            _run("run_h", thread_id, assistant_id),
            history=True,
            lease_owner="wrk_h",
            lease_expires_at=5.0,
        )
    assert [m["id"] for m in history] == [before[0]["id"], "msg_added"]
    row = await kit.row("run_h")
    assert (row.lease_owner, row.lease_expires_at, row.status) == ("wrk_h", 5.0, "queued")

    async with kit.db.write() as conn:  # a thread with no messages
        await objects.threads.insert(conn, kit.project, {"id": "thread_e", "created_at": 1})
        empty = await run_creates.insert_idle(
            conn, kit.project, _run("run_e", "thread_e", assistant_id), history=True
        )
    assert empty == []
    assert await _thread_runs(kit, "thread_e") == ["run_e"]
