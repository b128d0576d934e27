"""Sweeper: lapsed leases, overdue runs and stranded cancels, with a clock the test
moves (no waiting for leases to lapse)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.engine.events import Events
from threadline.engine.sweeper import MAX_ATTEMPTS, REQUEUE_SECONDS

LEASE = 15.0


async def nothing(_conn: AsyncConnection, _project: str, _run: dict[str, Any]) -> Events:
    return []


async def claim_and_vanish(kit: Any, run_id: str) -> None:
    """A worker claims the run, then dies: its lease lapses."""
    await kit.lifecycle.claim(run_id, "wrk_dead", kit.clock.time() + LEASE, nothing)
    kit.clock.advance(LEASE + 1)


async def test_a_lapsed_lease_is_queued_again_then_failed(kit: Any) -> None:
    run = await kit.new_run()
    kit.queue.enqueued.clear()
    for attempt in range(1, MAX_ATTEMPTS):
        await claim_and_vanish(kit, run["id"])
        await kit.sweeper.sweep()
        row = await kit.row(run["id"])
        assert (row.status, row.attempts, row.lease_owner) == ("queued", attempt, None)
        assert kit.queue.enqueued.count(run["id"]) == attempt
    await claim_and_vanish(kit, run["id"])
    await kit.sweeper.sweep()
    row = await kit.row(run["id"])
    assert row.status == "failed"
    assert row.data["last_error"]["code"] == "server_error"
    counted = kit.lifecycle.metrics.registry.get_sample_value
    takeovers = "threadline_lease_takeovers_total"
    assert counted(takeovers, {"outcome": "requeued"}) == MAX_ATTEMPTS - 1
    assert counted(takeovers, {"outcome": "failed"}) == 1


async def test_queued_runs_are_handed_to_the_queue_again_now_and_then(kit: Any) -> None:
    # A run whose job was lost (its defer cut off) is not left waiting for ever.
    run = await kit.new_run()
    kit.queue.enqueued.clear()
    await kit.sweeper.sweep()
    assert kit.queue.enqueued == []  # not at every sweep
    kit.clock.advance(REQUEUE_SECONDS + 1)
    await kit.sweeper.sweep()
    assert kit.queue.enqueued == [run["id"]]
    await kit.sweeper.sweep()
    assert kit.queue.enqueued == [run["id"]]


async def test_a_live_lease_is_left_alone(kit: Any) -> None:
    run = await kit.new_run()
    await kit.lifecycle.claim(run["id"], "wrk_alive", kit.clock.time() + LEASE, nothing)
    kit.clock.advance(LEASE - 1)
    await kit.sweeper.sweep()
    assert await kit.status(run["id"]) == "in_progress"


async def test_overdue_runs_expire_and_are_aborted(kit: Any) -> None:
    queued = await kit.new_run()
    waiting = await kit.new_run()
    await kit.lifecycle.claim(waiting["id"], "wrk_a", kit.clock.time() + 10_000, nothing)
    kit.clock.advance(kit.settings.run_expires_seconds + 1)
    await kit.sweeper.sweep()
    for run in (queued, waiting):
        assert await kit.status(run["id"]) == "expired"
    assert set(kit.queue.aborted) == {queued["id"], waiting["id"]}
    assert (await kit.event_names(waiting["id"]))[-1] == "thread.run.expired"


async def test_a_stranded_cancel_is_finished(kit: Any) -> None:
    run = await kit.new_run()
    await kit.lifecycle.claim(run["id"], "wrk_dead", kit.clock.time() + LEASE, nothing)
    await kit.lifecycle.cancel(run["id"])
    kit.clock.advance(LEASE + 1)
    await kit.sweeper.sweep()
    assert await kit.status(run["id"]) == "cancelled"


async def test_requeue_waiting_hands_every_queued_run_to_the_queue(kit: Any) -> None:
    first, second = await kit.new_run(), await kit.new_run()
    kit.queue.enqueued.clear()
    assert await kit.sweeper.requeue_waiting() == 2
    assert kit.queue.enqueued == [first["id"], second["id"]]


async def test_a_dead_workers_runs_are_recovered_before_their_leases_lapse(kit: Any) -> None:
    # The queue found the worker's heartbeat stopped: its runs are queued again at
    # once (an attempt counted), a cancel it left is finished; nothing waits for
    # the lease.
    running, cancelling = await kit.new_run(), await kit.new_run()
    for run in (running, cancelling):
        await kit.lifecycle.claim(run["id"], "wrk_dead", kit.clock.time() + LEASE, nothing)
    await kit.lifecycle.cancel(cancelling["id"])
    kit.queue.enqueued.clear()
    kit.queue.stalled = [running["id"], cancelling["id"]]
    await kit.sweeper.sweep()
    row = await kit.row(running["id"])
    assert (row.status, row.attempts, row.lease_owner) == ("queued", 1, None)
    assert kit.queue.enqueued == [running["id"]]
    assert await kit.status(cancelling["id"]) == "cancelled"
    await kit.sweeper.sweep()  # reported once: nothing more happens
    assert kit.queue.enqueued == [running["id"]]


async def test_a_stalled_run_that_is_queued_is_queued_again(kit: Any) -> None:
    # Its execution died before it claimed the run: the run waits with no job.
    run = await kit.new_run()
    kit.queue.enqueued.clear()
    kit.queue.stalled = [run["id"]]
    await kit.sweeper.sweep()
    assert kit.queue.enqueued == [run["id"]]
    assert await kit.status(run["id"]) == "queued"
