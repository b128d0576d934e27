"""The in-memory event bus: per-run sequence numbers, replay after a cursor, and
events published together reaching a subscriber together."""

from __future__ import annotations

import asyncio

from threadline.engine.events import Event, InMemoryEventBus


async def next_batch(bus: InMemoryEventBus, run_id: str, after: int) -> list[Event]:
    batches = bus.subscribe_batches(run_id, after)
    try:
        return await asyncio.wait_for(anext(batches), 1)
    finally:
        await batches.aclose()


async def test_publish_all_numbers_in_order_and_arrives_as_one_batch() -> None:
    bus = InMemoryEventBus()
    assert await bus.publish("run_a", "thread.run.created", {"status": "queued"}) == 1
    batches = bus.subscribe_batches("run_a", 1)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing after seq 1 yet
    await bus.publish_all(
        "run_a",
        [("thread.run.queued", {"n": 2}), ("thread.run.in_progress", {"n": 3})],
    )
    batch = await asyncio.wait_for(waiting, 1)
    await batches.aclose()
    assert [(e.seq, e.name, e.data) for e in batch] == [
        (2, "thread.run.queued", {"n": 2}),
        (3, "thread.run.in_progress", {"n": 3}),
    ]
    assert await bus.last_seq("run_a") == 3
    assert await bus.last_seq("run_b") == 0


async def test_events_are_snapshots_and_replay_from_any_cursor() -> None:
    bus = InMemoryEventBus()
    message = {"status": "in_progress"}
    await bus.publish_all("run_a", [("thread.message.created", message)])
    message["status"] = "completed"  # the engine goes on changing its objects
    await bus.publish("run_a", "thread.message.completed", message)
    replay = await next_batch(bus, "run_a", 0)
    assert [e.data["status"] for e in replay] == ["in_progress", "completed"]
    assert [e.seq for e in await next_batch(bus, "run_a", 1)] == [2]
    assert replay[0].sse() == (
        'id: 1\nevent: thread.message.created\ndata: {"status":"in_progress"}\n\n'
    )
