"""Lifecycle: each named transition as one transaction on both engines; refusals
are typed and write nothing; a move survives the cancellation of its caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.run_status import CANCEL, CLAIM, COMPLETE, HAND_BACK
from threadline.engine.events import Events
from threadline.engine.lifecycle import (
    LeaseLost,
    RunExpired,
    RunGone,
    TurnEnd,
    WrongStatus,
)
from threadline.models.base import Usage

pytestmark = pytest.mark.usefixtures("kit")


async def nothing(_conn: AsyncConnection, _project: str, _run: dict[str, Any]) -> Events:
    return []


async def test_cancel_then_finish_cancel(kit: Any) -> None:
    run = await kit.new_run()
    moved = await kit.lifecycle.cancel(run["id"])
    assert moved.run["status"] == "cancelling"
    assert await kit.status(run["id"]) == "cancelling"
    done = await kit.lifecycle.finish_cancel(run["id"])
    assert done.run["status"] == "cancelled"
    assert done.run["cancelled_at"] is not None
    assert done.run["expires_at"] is None
    assert done.run["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    names = await kit.event_names(run["id"])
    assert names[-2:] == ["thread.run.cancelling", "thread.run.cancelled"]


async def test_a_refused_move_says_why_and_writes_nothing(kit: Any) -> None:
    run = await kit.new_run()
    await kit.lifecycle.cancel(run["id"])
    await kit.lifecycle.finish_cancel(run["id"])
    before = await kit.event_names(run["id"])
    with pytest.raises(WrongStatus) as refused:
        await kit.lifecycle.cancel(run["id"])
    assert refused.value.current == "cancelled"
    assert refused.value.transition is CANCEL
    assert "cannot cancel" in str(refused.value)
    assert await kit.status(run["id"]) == "cancelled"
    assert await kit.event_names(run["id"]) == before


async def test_unknown_run_is_gone(kit: Any) -> None:
    with pytest.raises(RunGone):
        await kit.lifecycle.expire("run_missing")


async def test_claim_takes_a_lease_and_only_its_holder_ends_the_turn(kit: Any) -> None:
    run = await kit.new_run()
    until = kit.clock.time() + 15
    claimed = await kit.lifecycle.claim(run["id"], "wrk_a", until, nothing)
    assert claimed.run["status"] == "in_progress"
    assert claimed.run["started_at"] == int(kit.clock.time())
    row = await kit.row(run["id"])
    assert (row.lease_owner, row.lease_expires_at) == ("wrk_a", until)

    with pytest.raises(WrongStatus) as twice:
        await kit.lifecycle.claim(run["id"], "wrk_b", until, nothing)
    assert twice.value.transition is CLAIM

    with pytest.raises(LeaseLost) as lost:
        await kit.lifecycle.end_turn(
            COMPLETE, run["id"], "wrk_b", ended=TurnEnd(), usage=Usage(3, 4), change=lambda r: None
        )
    assert lost.value.holder == "wrk_a"
    assert await kit.status(run["id"]) == "in_progress"

    done = await kit.lifecycle.end_turn(
        COMPLETE, run["id"], "wrk_a", ended=TurnEnd(), usage=Usage(3, 4), change=lambda r: None
    )
    assert done.run["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner, row.prompt_tokens) == ("completed", None, 3)


async def test_a_turn_ends_only_in_its_own_ways(kit: Any) -> None:
    run = await kit.new_run()
    await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, nothing)
    with pytest.raises(ValueError, match="cannot end with hand back"):
        await kit.lifecycle.end_turn(
            HAND_BACK, run["id"], "wrk_a", ended=TurnEnd(), usage=Usage(), change=lambda r: None
        )


async def test_claim_after_expiry_is_refused_and_rolled_back(kit: Any) -> None:
    run = await kit.new_run()
    kit.clock.advance(kit.settings.run_expires_seconds + 1)
    with pytest.raises(RunExpired):
        await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, nothing)
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("queued", None)
    expired = await kit.lifecycle.expire(run["id"])
    assert expired.run["status"] == "expired"
    assert expired.run["started_at"] is None


async def test_a_move_survives_the_cancellation_of_its_caller(kit: Any) -> None:
    run = await kit.new_run()
    await kit.lifecycle.claim(run["id"], "wrk_a", kit.clock.time() + 15, nothing)
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow(_conn: AsyncConnection, _project: str, _run: dict[str, Any]) -> Events:
        inside.set()
        await release.wait()
        return []

    caller = asyncio.create_task(kit.lifecycle.hand_back(run["id"], "wrk_a", work=slow))
    await inside.wait()
    caller.cancel()
    await asyncio.sleep(0)
    assert not caller.done()  # still writing
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("queued", None)
    assert (await kit.event_names(run["id"]))[-1] == "thread.run.queued"
