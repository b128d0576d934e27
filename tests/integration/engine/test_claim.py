"""A queued run's claim written without locking the run first (``storage.run_writes``,
on PostgreSQL), its turn's reads made just before the write: what changed between
the claim's read and its write is kept or wins, the turn gets the reads of the way
that wrote the claim, and on each engine the outcome is the locked way's."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.integration.engine.unlocked import between_read_and_write
from threadline.engine.lifecycle import RunExpired, WrongStatus
from threadline.schemas.run import ModifyRunRequest
from threadline.storage import runs as store


class Reads:
    """A claim's ``read``: what it was given and what it read of the thread."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[dict[str, Any]]]] = []

    async def __call__(self, conn: AsyncConnection, project: str, run: dict[str, Any]) -> list[Any]:
        history, _own = await store.history_and_own(conn, run["thread_id"], run["id"])
        self.seen.append((project, run["status"], history))
        return []


async def test_a_claim_takes_no_lock_on_postgres_and_reads_the_thread(
    kit: Any, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await kit.new_run()
    locks: list[str] = []
    lock_run = store.lock_run

    async def counted(conn: Any, run_id: str) -> Any:
        locks.append(run_id)
        return await lock_run(conn, run_id)

    monkeypatch.setattr(store, "lock_run", counted)
    reads = Reads()
    until = kit.clock.time() + 15
    claimed = await kit.lifecycle.claim(run["id"], "wrk_a", until, reads)
    assert locks == ([] if engine == "postgres" else [run["id"]])
    [(project, status, history)] = reads.seen
    assert (project, status) == (kit.project, "in_progress")
    assert [m["content"][0]["text"]["value"] for m in history] == ["Hello"]
    assert claimed.run["status"] == "in_progress"
    assert claimed.run["started_at"] == int(kit.clock.time())
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("in_progress", "wrk_a", until)
    assert row.data["started_at"] == claimed.run["started_at"]
    assert (await kit.event_names(run["id"]))[-1] == "thread.run.in_progress"


async def test_metadata_set_while_a_run_is_claimed_is_kept(
    kit: Any, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await kit.new_run()

    async def set_metadata() -> None:
        req = ModifyRunRequest.model_validate({"metadata": {"set": "meanwhile"}})
        await kit.runs.modify(kit.project, run["thread_id"], run["id"], req)

    before = between_read_and_write(engine, monkeypatch, set_metadata, "queued")
    await before()
    reads = Reads()
    claimed = await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, reads)
    # On PostgreSQL read for the unlocked write, which found the row changed, and
    # again by the locked way that wrote the claim.
    assert len(reads.seen) == (2 if engine == "postgres" else 1)
    assert claimed.run["metadata"] == {"set": "meanwhile"}
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("in_progress", "wrk_a")
    assert row.data["metadata"] == {"set": "meanwhile"}


async def test_a_run_cancelled_while_it_is_claimed_is_not_claimed(
    kit: Any, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await kit.new_run()

    async def cancel() -> None:
        await kit.runs.cancel(kit.project, run["thread_id"], run["id"])

    before = between_read_and_write(engine, monkeypatch, cancel, "queued")
    await before()
    reads = Reads()
    with pytest.raises(WrongStatus) as refused:
        await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, reads)
    assert refused.value.current == "cancelled"  # a queued run: at once
    # On PostgreSQL read for the unlocked write, which then wrote nothing.
    assert len(reads.seen) == (1 if engine == "postgres" else 0)
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("cancelled", None)
    assert "thread.run.in_progress" not in await kit.event_names(run["id"])


async def test_of_two_workers_claiming_one_run_one_has_it(
    kit: Any, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await kit.new_run()
    theirs = Reads()

    async def other_worker_claims() -> None:
        await kit.lifecycle.claim(run["id"], "wrk_b", kit.clock.time() + 15, theirs)

    before = between_read_and_write(engine, monkeypatch, other_worker_claims, "queued")
    await before()
    ours = Reads()
    with pytest.raises(WrongStatus) as refused:
        await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, ours)
    assert refused.value.current == "in_progress"
    assert len(theirs.seen) == 1
    assert len(ours.seen) == (1 if engine == "postgres" else 0)
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("in_progress", "wrk_b")
    assert (await kit.event_names(run["id"])).count("thread.run.in_progress") == 1


async def test_an_expired_run_is_neither_claimed_nor_read(kit: Any) -> None:
    run = await kit.new_run()
    kit.clock.advance(kit.settings.run_expires_seconds + 1)
    reads = Reads()
    with pytest.raises(RunExpired):
        await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, reads)
    assert reads.seen == []
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner, row.data["started_at"]) == ("queued", None, None)
