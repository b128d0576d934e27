"""The ``EventBus`` on Redis Streams, shared by every process of a deployment.

One stream per run (``<prefix>run:<id>:events``) and one counter beside it
(``<prefix>run:<id>:seq``). A Lua script appends a batch atomically: it takes the
next sequence numbers from the counter (INCR) and adds each event with the stream
id ``<seq>-0``, so several processes may publish for one run (the API its
``created``/``queued``/``cancelling``, a worker the rest) and the ids stay the
per-run sequence the SSE ``id:`` lines carry. The stream is capped at
``max_events`` (the oldest go first, as in the in-memory ring buffer) and both
keys expire ``retention`` seconds after the run's last event, as the in-memory
bus forgets a run: a stream whose events are gone reads as a run with none
(``last_seq`` 0), which the events endpoint answers with the stored run.

A subscriber reads with ``XREAD BLOCK`` after its cursor: the replay and the
live tail are the same call. When Redis cannot be reached a subscriber waits and
tries again (its cursor kept), so a stream resumes once Redis is back; a publisher
tries again for ``publish_patience`` seconds before it gives up (a batch whose
reply was lost as the connection broke may then be appended twice).

A Redis that comes back without its data (restarted without persistence) starts
every run's sequence again from 1, under numbers a stream has already sent. So
each event carries a boot mark (``<prefix>boot``, set by the first publisher after
Redis starts empty): a subscriber that meets an event of another mark, or finds
the mark changed once its connection broke or the stream went quiet, ends with an
``error`` event saying the stream was lost (the client reads the stored run)
instead of waiting for events that will not come.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from threadline.engine.events import Event, EventBus

log = logging.getLogger("threadline.events")

# KEYS: the counter, the stream, the boot mark. ARGV: max length, retention (s),
# a new boot mark, then name and payload for each event. Returns the last sequence
# number given.
_PUBLISH = """
redis.call('SET', KEYS[3], ARGV[3], 'NX')
local boot = redis.call('GET', KEYS[3])
local seq = 0
for i = 4, #ARGV, 2 do
  seq = redis.call('INCR', KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[1], seq .. '-0',
    'n', ARGV[i], 'p', ARGV[i + 1], 'b', boot)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return seq
"""

# A blocking read must end before the socket's read timeout, or it reads as an error.
_BLOCK_MS = 2_000
_SOCKET_TIMEOUT = 10.0
_RETRY_SECONDS = 0.5
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisEventBus(EventBus):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "threadline:",
        max_events: int = 20_000,
        retention: float = 900.0,
        max_connections: int = 2_000,
        publish_patience: float = 10.0,
    ) -> None:
        self.prefix = prefix
        self.max_events = max_events
        self.retention = max(1, int(retention))
        self.publish_patience = publish_patience
        # By then a publisher has either published or given up.
        self.stale_after = publish_patience + _BLOCK_MS / 1000
        # A subscriber holds a connection while it blocks; publishers take the others.
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            max_connections=max_connections,
            decode_responses=False,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=2.0,
            health_check_interval=30,
        )
        self._publish = self.redis.register_script(_PUBLISH)
        # Marks every event with the Redis it was written to (the first publisher
        # after Redis starts empty sets it), so a stream notices a Redis that
        # restarted without its data rather than wait for events that never come.
        self.boot_key = f"{prefix}boot"
        self._boot_mark = secrets.token_hex(6)

    def _keys(self, run_id: str) -> tuple[str, str]:
        base = f"{self.prefix}run:{run_id}:"
        return base + "seq", base + "events"

    async def publish(self, run_id: str, name: str, data: dict[str, Any]) -> int:
        return await self._append(run_id, [(name, data)])

    async def publish_all(self, run_id: str, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        batch = list(events)
        if batch:
            await self._append(run_id, batch)

    async def _append(self, run_id: str, events: list[tuple[str, dict[str, Any]]]) -> int:
        args: list[Any] = [self.max_events, self.retention, self._boot_mark]
        for name, data in events:
            # A snapshot, as ``Event.of`` makes it (the engine goes on changing data).
            args += [name, json.dumps(data, separators=(",", ":"), ensure_ascii=False)]
        deadline = time.monotonic() + self.publish_patience
        while True:
            try:
                keys = [*self._keys(run_id), self.boot_key]
                return int(await self._publish(keys=keys, args=args))
            except _UNREACHABLE as exc:
                # Redis restarting: wait for it a while rather than fail the run.
                if time.monotonic() >= deadline:
                    raise
                log.warning("publishing an event of %s: %s; trying again", run_id, exc)
                await asyncio.sleep(_RETRY_SECONDS)

    async def last_seq(self, run_id: str) -> int:
        key = self._keys(run_id)[0]
        try:
            raw = await self.redis.get(key)
        except _UNREACHABLE:
            # A pooled connection that Redis closed as it restarted fails once (and
            # is dropped); a new one answers. Unreachable for good: this raises.
            raw = await self.redis.get(key)
        return int(raw) if raw is not None else 0

    async def subscribe(self, run_id: str, after: int = 0) -> AsyncIterator[Event]:
        async for batch in self.subscribe_batches(run_id, after):
            for event in batch:
                yield event  # (an empty batch, a quiet spell, yields nothing)

    async def subscribe_batches(self, run_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        stream = self._keys(run_id)[1]
        cursor = after
        # The boot mark of the events this stream continues (None: not known yet);
        # once the connection broke or the stream went quiet it is checked again.
        boot: bytes | None = None
        read_boot = bool(after)  # read inside the loop: Redis may be away right now
        check = False
        while True:
            try:
                if read_boot:
                    boot = await self._boot()
                    read_boot = False
                if check and boot is not None and await self._boot() != boot:
                    yield [_lost(cursor)]
                    return
                check = False
                reply: Any = await self.redis.xread({stream: f"{cursor}-0"}, block=_BLOCK_MS)
            except _UNREACHABLE as exc:
                log.warning("reading the events of %s: %s; trying again", run_id, exc)
                check = True
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if not reply:
                check = True
                yield []  # quiet: the subscriber may look at the stored run
                continue
            batch: list[Event] = []
            for _key, entries in reply:
                for entry_id, fields in entries:
                    mark = fields.get(b"b", b"")
                    if boot is None:
                        boot = mark
                    elif mark != boot:
                        # Redis restarted empty and the run's events began again
                        # from 1: they do not continue what this stream sent.
                        yield [*batch, _lost(cursor)]
                        return
                    batch.append(_event(entry_id, fields))
                    cursor = batch[-1].seq
            if batch:
                yield batch

    async def _boot(self) -> bytes | None:
        raw: Any = await self.redis.get(self.boot_key)
        return None if raw is None else bytes(raw)

    async def ping(self) -> None:
        await self.redis.ping()

    async def aclose(self) -> None:
        await self.redis.aclose()


def _lost(cursor: int) -> Event:
    """The ``error`` that ends a stream whose earlier events Redis lost."""
    error = {
        "message": (
            "The run's event stream was lost (the event store restarted); "
            "retrieve the run and its messages for what it did."
        ),
        "type": "server_error",
        "param": None,
        "code": "server_error",
    }
    return Event.of(cursor, "error", error)


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    seq = int(entry_id.split(b"-", 1)[0])
    return Event(seq, fields[b"n"].decode(), fields[b"p"].decode())
