"""The ``EventBus`` contract, on each implementation: in memory, and on Redis
Streams (the Redis at 127.0.0.1:6379, a random key prefix per test, removed after).

Per-run sequence numbers, replay after a cursor then live, events published
together arriving together, snapshots, a bounded length, expiry after the last
event, and several publishers (processes) sharing one run's sequence; on Redis, a stream
that outlives a Redis restarted without its data ends with an ``error`` event."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis import asyncio as aioredis

from threadline.engine.events import Event, EventBus, InMemoryEventBus
from threadline.engine.redis_events import RedisEventBus

REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_EVENTS = 5

MakeBus = Callable[[], Awaitable[EventBus]]


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[MakeBus]:
    """Buses as processes of one deployment see them: in memory, one bus is the
    whole deployment; on Redis, each call is another process's client."""
    made: list[EventBus] = []
    prefix = f"test-{secrets.token_hex(6)}:"

    async def make() -> EventBus:
        if request.param == "memory":
            if not made:
                made.append(InMemoryEventBus(max_events=MAX_EVENTS, retention=60))
            return made[0]
        bus = RedisEventBus(REDIS_URL, prefix=prefix, max_events=MAX_EVENTS, retention=60)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.aclose()
    if request.param == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def next_batch(bus: EventBus, run_id: str, after: int) -> list[Event]:
    batches = bus.subscribe_batches(run_id, after)
    try:
        return await asyncio.wait_for(anext(batches), 5)
    finally:
        await batches.aclose()


async def test_publish_all_numbers_in_order_and_arrives_as_one_batch(make_bus: MakeBus) -> None:
    bus = await make_bus()
    assert await bus.publish("run_a", "thread.run.created", {"status": "queued"}) == 1
    batches = bus.subscribe_batches("run_a", 1)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.05)  # the subscriber is waiting (and must not have anything)
    assert not waiting.done()
    await bus.publish_all(
        "run_a",
        [("thread.run.queued", {"n": 2}), ("thread.run.in_progress", {"n": 3})],
    )
    batch = await asyncio.wait_for(waiting, 5)
    await batches.aclose()
    assert [(e.seq, e.name, e.data) for e in batch] == [
        (2, "thread.run.queued", {"n": 2}),
        (3, "thread.run.in_progress", {"n": 3}),
    ]
    assert await bus.last_seq("run_a") == 3
    assert await bus.last_seq("run_b") == 0


async def test_events_are_snapshots_and_replay_from_any_cursor(make_bus: MakeBus) -> None:
    bus = await make_bus()
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


async def test_runs_are_apart(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.publish("run_a", "thread.run.created", {"run": "a"})
    await bus.publish("run_b", "thread.run.created", {"run": "b"})
    assert [e.data for e in await next_batch(bus, "run_b", 0)] == [{"run": "b"}]
    assert await bus.last_seq("run_a") == 1


async def test_the_length_is_bounded_and_replay_starts_at_the_oldest_kept(
    make_bus: MakeBus,
) -> None:
    bus = await make_bus()
    await bus.publish_all("run_a", [("thread.message.delta", {"i": i}) for i in range(1, 9)])
    assert await bus.last_seq("run_a") == 8
    replay = await next_batch(bus, "run_a", 0)
    assert [e.seq for e in replay] == [4, 5, 6, 7, 8]  # MAX_EVENTS kept
    assert [e.data["i"] for e in replay] == [4, 5, 6, 7, 8]
    assert [e.seq for e in await next_batch(bus, "run_a", 6)] == [7, 8]


async def test_publishers_in_several_processes_share_one_sequence(make_bus: MakeBus) -> None:
    api, worker, reader = await make_bus(), await make_bus(), await make_bus()

    async def publish(bus: EventBus, who: str) -> list[int]:
        return [await bus.publish("run_a", "thread.message.delta", {"who": who}) for _ in range(4)]

    from_api, from_worker = await asyncio.gather(publish(api, "api"), publish(worker, "worker"))
    assert sorted(from_api + from_worker) == list(range(1, 9))
    assert await reader.last_seq("run_a") == 8
    # Each event is read back under the number its publisher was given.
    kept = await next_batch(reader, "run_a", 3)
    assert [e.seq for e in kept] == [4, 5, 6, 7, 8]
    for event in kept:
        assert event.seq in (from_api if event.data["who"] == "api" else from_worker)


async def test_a_live_subscriber_in_another_process_sees_each_event_once(
    make_bus: MakeBus,
) -> None:
    worker, api = await make_bus(), await make_bus()
    seen: list[int] = []
    got_all = asyncio.Event()

    async def follow() -> None:
        async for event in api.subscribe("run_a", 0):
            seen.append(event.seq)
            if event.name == "thread.run.completed":
                got_all.set()
                return

    follower = asyncio.create_task(follow())
    for i in range(3):
        await worker.publish("run_a", "thread.message.delta", {"i": i})
    await worker.publish("run_a", "thread.run.completed", {})
    await asyncio.wait_for(got_all.wait(), 5)
    await follower
    assert seen == [1, 2, 3, 4]


async def test_a_run_is_forgotten_after_its_retention() -> None:
    # The retention starts again at each event; past it, the run has no events.
    memory = InMemoryEventBus(retention=0)
    await memory.publish("run_a", "thread.run.created", {})
    await memory.publish("run_b", "thread.run.created", {})  # forgets the stale run_a
    assert await memory.last_seq("run_a") == 0

    prefix = f"test-{secrets.token_hex(6)}:"
    bus = RedisEventBus(REDIS_URL, prefix=prefix, retention=30)
    try:
        await bus.publish("run_a", "thread.run.created", {})
        for key in (f"{prefix}run:run_a:seq", f"{prefix}run:run_a:events"):
            assert 0 < await bus.redis.ttl(key) <= 30
        # What expiry leaves: no counter, no stream, the same as a run never seen.
        await bus.redis.delete(f"{prefix}run:run_a:seq", f"{prefix}run:run_a:events")
        assert await bus.last_seq("run_a") == 0
        await bus.redis.delete(bus.boot_key)
    finally:
        await bus.aclose()


class Outage:
    """A TCP proxy in front of Redis that can cut every connection and refuse new
    ones (Redis unreachable for its clients), then let them through again."""

    def __init__(self) -> None:
        self.down = False
        self.refused = asyncio.Event()  # a client tried while it was down
        self.open: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused.set()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self.open += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.down = True
        for writer in self.open:
            writer.close()
        self.open.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_subscriber_resumes_after_redis_comes_back_without_loss_or_repeat() -> None:
    prefix = f"test-{secrets.token_hex(6)}:"
    outage = Outage()
    reader = RedisEventBus(await outage.start(), prefix=prefix)
    worker = RedisEventBus(REDIS_URL, prefix=prefix)  # on the other side of the outage
    arrived: asyncio.Queue[int] = asyncio.Queue()

    async def follow() -> None:
        async for event in reader.subscribe("run_a", 0):
            arrived.put_nowait(event.seq)

    async def next_seqs(count: int) -> list[int]:
        return [await asyncio.wait_for(arrived.get(), 10) for _ in range(count)]

    follower = asyncio.create_task(follow())
    try:
        await worker.publish("run_a", "thread.run.created", {})
        assert await next_seqs(1) == [1]
        outage.cut()
        with pytest.raises(Exception):  # noqa: B017, PT011 - redis-py's connection errors vary
            await reader.ping()
        for i in range(2, 5):
            await worker.publish("run_a", "thread.message.delta", {"i": i})
        assert not follower.done()  # it waits for Redis, it does not end
        outage.down = False
        assert await next_seqs(3) == [2, 3, 4]
        assert arrived.empty()
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await reader.aclose()
        await worker.redis.delete(
            f"{prefix}run:run_a:seq", f"{prefix}run:run_a:events", worker.boot_key
        )
        await worker.aclose()
        await outage.stop()


async def test_a_stream_resumed_while_redis_is_away_waits_for_it() -> None:
    prefix = f"test-{secrets.token_hex(6)}:"
    outage = Outage()
    reader = RedisEventBus(await outage.start(), prefix=prefix)
    worker = RedisEventBus(REDIS_URL, prefix=prefix)
    try:
        await worker.publish_all("run_a", [("thread.run.created", {}), ("thread.run.queued", {})])
        outage.cut()
        # A client reconnecting with Last-Event-ID 1 while Redis restarts.
        resumed = asyncio.ensure_future(next_batch(reader, "run_a", 1))
        await asyncio.wait_for(outage.refused.wait(), 5)  # it tried, and failed
        await asyncio.sleep(0.1)
        assert not resumed.done()  # it waits for Redis, it does not end
        outage.down = False
        assert [e.seq for e in await asyncio.wait_for(resumed, 10)] == [2]
    finally:
        await reader.aclose()
        await worker.redis.delete(
            f"{prefix}run:run_a:seq", f"{prefix}run:run_a:events", worker.boot_key
        )
        await worker.aclose()
        await outage.stop()


async def test_a_publisher_waits_for_redis_to_come_back() -> None:
    prefix = f"test-{secrets.token_hex(6)}:"
    outage = Outage()
    worker = RedisEventBus(await outage.start(), prefix=prefix)
    reader = RedisEventBus(REDIS_URL, prefix=prefix)
    try:
        assert await worker.publish("run_a", "thread.run.created", {}) == 1
        outage.cut()
        publishing = asyncio.create_task(worker.publish("run_a", "thread.message.delta", {}))
        await asyncio.wait_for(outage.refused.wait(), 5)  # it tried, and failed
        assert not publishing.done()
        outage.down = False
        assert await asyncio.wait_for(publishing, 10) == 2
        assert [e.seq for e in await next_batch(reader, "run_a", 0)] == [1, 2]
    finally:
        await worker.aclose()
        await reader.redis.delete(
            f"{prefix}run:run_a:seq", f"{prefix}run:run_a:events", reader.boot_key
        )
        await reader.aclose()
        await outage.stop()


@pytest.mark.parametrize("published_after", [2, 6])
async def test_a_stream_ends_with_an_error_when_redis_lost_its_events(
    published_after: int,
) -> None:
    # Redis restarted empty (its keys gone), then the run's events begin again
    # from 1: fewer than the stream had seen (it would wait for ever), or more
    # (it would send other events under numbers it had already sent).
    prefix = f"test-{secrets.token_hex(6)}:"
    before = RedisEventBus(REDIS_URL, prefix=prefix)
    after = RedisEventBus(REDIS_URL, prefix=prefix)  # the worker after the restart
    reader = RedisEventBus(REDIS_URL, prefix=prefix)
    try:
        for _ in range(3):
            await before.publish("run_a", "thread.message.delta", {})
        stream = reader.subscribe("run_a", 0)
        assert [(await anext(stream)).seq for _ in range(3)] == [1, 2, 3]
        keys = [key async for key in reader.redis.scan_iter(match=f"{prefix}*")]
        await reader.redis.delete(*keys)
        for _ in range(published_after):
            await after.publish("run_a", "thread.message.delta", {})
        last = await asyncio.wait_for(anext(stream), 10)
        assert last.name == "error"
        assert last.data["code"] == "server_error"
        assert "event stream was lost" in last.data["message"]
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(stream), 5)
    finally:
        keys = [key async for key in reader.redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await reader.redis.delete(*keys)
        for bus in (before, after, reader):
            await bus.aclose()


async def test_a_stream_goes_on_when_redis_kept_its_events() -> None:
    prefix = f"test-{secrets.token_hex(6)}:"
    bus = RedisEventBus(REDIS_URL, prefix=prefix)
    other = RedisEventBus(REDIS_URL, prefix=prefix)  # another process, its own mark
    try:
        await bus.publish("run_a", "thread.message.delta", {})
        stream = other.subscribe("run_a", 1)  # resumed after a cursor
        await other.publish("run_a", "thread.message.delta", {})
        assert (await asyncio.wait_for(anext(stream), 5)).seq == 2
        await bus.publish("run_a", "thread.run.completed", {})
        assert (await asyncio.wait_for(anext(stream), 5)).name == "thread.run.completed"
        await stream.aclose()
    finally:
        keys = [key async for key in bus.redis.scan_iter(match=f"{prefix}*")]
        await bus.redis.delete(*keys)
        await bus.aclose()
        await other.aclose()
