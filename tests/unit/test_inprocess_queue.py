"""The in-process queue's slots: enqueued runs and runs started in a reserved slot
share the same concurrency limit, and a reserved slot never jumps the queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from threadline.queue.inprocess import InProcessQueue


class Recorder:
    """An ``execute`` whose executions run until released, one event per run."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, run_id: str) -> asyncio.Event:
        return self.gates.setdefault(run_id, asyncio.Event())

    async def execute(self, run_id: str) -> None:
        self.started.append(run_id)
        await self.gate(run_id).wait()


@asynccontextmanager
async def running(concurrency: int) -> AsyncIterator[tuple[InProcessQueue, Recorder]]:
    """A started queue and the recorder it executes with; every gate opened and
    the queue stopped at the end."""
    queue, recorder = InProcessQueue(concurrency), Recorder()
    await queue.start(recorder.execute)
    try:
        yield queue, recorder
    finally:
        for gate in recorder.gates.values():
            gate.set()
        await queue.stop(1)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_reserved_slot_counts_against_the_concurrency() -> None:
    async with running(2) as (queue, recorder):
        first = queue.reserve()
        assert first is not None
        first.start("run_a", lambda: recorder.execute("run_a"))
        await queue.enqueue("run_b")
        await settle()
        assert recorder.started == ["run_a", "run_b"]
        # Both slots are taken: no reservation, and a third run waits its turn.
        assert queue.reserve() is None
        await queue.enqueue("run_c")
        await settle()
        assert recorder.started == ["run_a", "run_b"]
        recorder.gate("run_a").set()
        await settle()
        assert recorder.started == ["run_a", "run_b", "run_c"]


async def test_a_reservation_never_jumps_the_queue() -> None:
    async with running(1) as (queue, recorder):
        await queue.enqueue("run_a")
        await settle()
        await queue.enqueue("run_b")  # waits for run_a's slot
        assert queue.reserve() is None
        recorder.gate("run_a").set()
        await settle()
        assert recorder.started == ["run_a", "run_b"]


async def test_a_released_slot_is_free_again_and_a_slot_is_used_once() -> None:
    async with running(1) as (queue, recorder):
        slot = queue.reserve()
        assert slot is not None
        assert queue.reserve() is None
        slot.release()
        again = queue.reserve()
        assert again is not None
        again.start("run_a", lambda: recorder.execute("run_a"))
        await settle()
        assert recorder.started == ["run_a"]
        assert await queue.abort("run_a") is True  # it is running here
        await settle()
        assert queue.reserve() is not None  # the aborted run gave its slot back
        with pytest.raises(RuntimeError, match="already used"):
            again.release()


async def test_no_reservation_before_start_or_after_stop() -> None:
    queue, recorder = InProcessQueue(4), Recorder()
    assert queue.reserve() is None
    await queue.start(recorder.execute)
    assert queue.reserve() is not None
    await queue.stop(1)
    assert queue.reserve() is None
