"""A turn's end written without locking the run first (``storage.run_writes``, on
PostgreSQL): what changed between its read and its write is never lost, and a turn
whose lease went meanwhile writes nothing; on each engine the outcome is the locked
way's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.engine.unlocked import between_read_and_write
from threadline.domain.run_status import COMPLETE
from threadline.engine.lifecycle import LeaseLost
from threadline.engine.output import TurnOutput
from threadline.models.base import Usage
from threadline.schemas.run import ModifyRunRequest
from threadline.storage import run_writes
from threadline.storage import runs as store


async def test_metadata_set_while_a_turn_ends_is_kept(
    kit: Any, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await kit.new_run({"text": "It is sunny."})

    async def set_metadata() -> None:
        req = ModifyRunRequest.model_validate({"metadata": {"set": "meanwhile"}})
        await kit.runs.modify(kit.project, run["thread_id"], run["id"], req)

    before = between_read_and_write(engine, monkeypatch, set_metadata)
    await before()
    await kit.executor.execute(run["id"])
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("completed", None)
    assert row.data["metadata"] == {"set": "meanwhile"}
    assert row.data["usage"]["completion_tokens"] > 0
    [message] = await kit.messages(run["id"])
    assert message["status"] == "completed"
    assert message["content"][0]["text"]["value"] == "It is sunny."
    name, completed = (await kit.events(run["id"]))[-1]
    assert (name, completed["metadata"]) == ("thread.run.completed", {"set": "meanwhile"})


async def test_a_turn_whose_lease_went_meanwhile_writes_nothing(
    kit: Any, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await kit.new_run()
    output = await _claimed_with_text(kit, run, "Hello")
    ended = output.finished(Usage(5, 6), truncated=False)

    async def lease_taken() -> None:  # the sweeper gave the run to another worker
        await kit.lifecycle.hand_back(run["id"], None)
        await kit.lifecycle.claim(run["id"], "wrk_b", kit.clock.time() + 15, _nothing)

    before = between_read_and_write(engine, monkeypatch, lease_taken)
    await before()
    with pytest.raises(LeaseLost) as lost:
        await kit.lifecycle.end_turn(
            COMPLETE, run["id"], "wrk_a", ended=ended, usage=Usage(5, 6), change=_no_change
        )
    assert lost.value.holder == "wrk_b"
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner, row.prompt_tokens) == ("in_progress", "wrk_b", 0)
    [message] = await kit.messages(run["id"])
    assert message["status"] == "in_progress"
    [step] = await kit.steps(run["id"])
    assert step["status"] == "in_progress"
    names = await kit.event_names(run["id"])
    assert names[-2:] == ["thread.run.queued", "thread.run.in_progress"]  # wrk_b's claim
    assert not {"thread.message.completed", "thread.run.completed"} & set(names)


async def test_a_lease_renewed_meanwhile_still_ends_the_turn(
    kit: Any, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change that leaves the move as it was (the holder's own renewal) costs the
    unlocked write its try, and the locked way makes the same move."""
    run = await kit.new_run()
    output = await _claimed_with_text(kit, run, "Done.")

    async def renewed() -> None:
        async with kit.db.write() as conn:
            assert await store.renew_lease(conn, run["id"], "wrk_a", kit.clock.time() + 60)

    before = between_read_and_write(engine, monkeypatch, renewed)
    await before()
    await _complete(kit, run, output, Usage(1, 1))
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("completed", None, None)
    assert row.data["usage"]["total_tokens"] == 2
    [message] = await kit.messages(run["id"])
    assert message["status"] == "completed"
    names = await kit.event_names(run["id"])
    assert names[-3:] == [
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]


async def test_an_unchanged_run_ends_without_being_locked_on_postgres(
    kit: Any, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the turn's end is the unlocked read and one statement (no
    locking read of the run); on SQLite it is the locked way."""
    run = await kit.new_run({"text": "Quick."})
    locks: list[str] = []
    lock_run = store.lock_run

    async def counted(conn: Any, run_id: str) -> Any:
        locks.append(run_id)
        return await lock_run(conn, run_id)

    output = await _claimed_with_text(kit, run, "Quick.")
    monkeypatch.setattr(store, "lock_run", counted)
    done = await _complete(kit, run, output, Usage(2, 3))
    assert locks == ([] if engine == "postgres" else [run["id"]])
    assert done.counted == Usage(0, 0)
    assert done.run["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    row = await kit.row(run["id"])
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("completed", 2, 3)
    [message] = await kit.messages(run["id"])
    assert (message["status"], message["content"][0]["text"]["value"]) == ("completed", "Quick.")
    [step] = await kit.steps(run["id"])
    assert (step["status"], step["usage"]["total_tokens"]) == ("completed", 5)


async def test_an_empty_reply_inserts_its_message_as_the_turn_ends(kit: Any) -> None:
    """A model that said nothing and called nothing: the turn's end makes the
    message and its step (inserted with the run's move, in one statement on
    PostgreSQL)."""
    run = await kit.new_run({"text": ""})
    await kit.executor.execute(run["id"])
    assert await kit.status(run["id"]) == "completed"
    [message] = await kit.messages(run["id"])
    assert message["status"] == "completed"
    assert message["content"] == [{"type": "text", "text": {"value": "", "annotations": []}}]
    [step] = await kit.steps(run["id"])
    assert step["step_details"]["message_creation"]["message_id"] == message["id"]
    assert step["status"] == "completed"
    names = await kit.event_names(run["id"])
    assert names[-7:] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]


async def test_a_write_racing_the_unlocked_one_wins_and_it_writes_nothing(
    kit: Any, engine: str
) -> None:
    """The unlocked write's row changed by a transaction still open when it was
    read: the write waits for it, finds a new version, and writes nothing."""
    if engine != "postgres":
        pytest.skip("SQLite has no unlocked write")
    run = await kit.new_run()
    planned = asyncio.Event()

    def plan(row: Any) -> run_writes.RunWrite:
        planned.set()
        return run_writes.RunWrite(dict(row.data, status="cancelling"), {}, run_writes.Output())

    async with kit.db.write() as conn:
        row = await store.lock_run(conn, run["id"])
        await store.save_run(conn, dict(row.data, metadata={"won": "yes"}), row.status)
        racing = asyncio.create_task(run_writes.write_unlocked(kit.db, run["id"], plan))
        await planned.wait()
    assert await racing is False
    row = await kit.row(run["id"])
    assert (row.status, row.data["metadata"]) == ("queued", {"won": "yes"})


async def test_sqlite_takes_the_locked_way(kit: Any, engine: str) -> None:
    if engine == "postgres":
        pytest.skip("PostgreSQL has the unlocked write")
    run = await kit.new_run()

    def plan(_row: Any) -> run_writes.RunWrite:
        raise AssertionError("not planned on SQLite")

    assert await run_writes.write_unlocked(kit.db, run["id"], plan) is False


async def _claimed_with_text(kit: Any, run: dict[str, Any], text: str) -> TurnOutput:
    """The run claimed by ``wrk_a``, whose turn has written ``text``."""
    claimed = await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, _nothing)
    output = TurnOutput(claimed.run, kit.db, kit.bus, "wrk_a", [])
    await output.text(text)
    return output


async def _complete(kit: Any, run: dict[str, Any], output: TurnOutput, usage: Usage) -> Any:
    """``wrk_a``'s turn ends the run completed."""
    return await kit.lifecycle.end_turn(
        COMPLETE,
        run["id"],
        "wrk_a",
        ended=output.finished(usage, truncated=False),
        usage=usage,
        change=_no_change,
    )


async def _nothing(*_args: Any) -> list[Any]:
    return []


def _no_change(_run: dict[str, Any]) -> None:
    pass
