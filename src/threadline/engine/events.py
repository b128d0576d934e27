"""Run events: the ``EventBus`` interface and its in-memory implementation.

Every event of a run gets a per-run sequence number (1, 2, 3…) that streams send
as the SSE ``id:``; a subscriber names the last sequence it saw and receives
everything after it, replayed from the buffer and then live. Per-token deltas
only ever travel here, never through the database.
"""

from __future__ import annotations

import asyncio
import functools
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from threadline.schemas.stream_event import DONE_SSE as DONE_SSE
from threadline.schemas.stream_event import SEGMENT_END as SEGMENT_END
from threadline.schemas.stream_event import Event as Event

Events = list[tuple[str, dict[str, Any]]]
"""Events to publish: (name, data) pairs, in order."""


class EventBus(ABC):
    stale_after: float | None = None
    """Seconds of quiet after which a subscriber's events may have been given up on
    (a publisher could not reach the bus); ``None``: a bus that loses none. A bus
    that sets it yields an empty batch to subscribers while it is quiet."""

    @abstractmethod
    async def publish(self, run_id: str, name: str, data: dict[str, Any]) -> int:
        """Append an event to the run's stream; return its sequence number."""

    async def publish_all(self, run_id: str, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """``publish`` each of ``events`` in order (a bus may do it in one go)."""
        for name, data in events:
            await self.publish(run_id, name, data)

    @abstractmethod
    async def last_seq(self, run_id: str) -> int:
        """The sequence number of the run's newest event (0 if none)."""

    @abstractmethod
    def subscribe(self, run_id: str, after: int = 0) -> AsyncIterator[Event]:
        """Every event with ``seq > after``, replayed then live, without end."""

    async def subscribe_batches(self, run_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        """``subscribe``, with the events that are there together in one list (a
        stream sends them in one write)."""
        async for event in self.subscribe(run_id, after):
            yield [event]

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise if the bus cannot be reached."""


@dataclass
class _RunLog:
    events: deque[Event]
    first_seq: int = 1
    next_seq: int = 1
    touched: float = field(default_factory=time.monotonic)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def has_after(self, seq: int) -> bool:
        return self.next_seq - 1 > seq


class InMemoryEventBus(EventBus):
    """A ring buffer per run, kept ``retention`` seconds after its last event."""

    def __init__(self, max_events: int = 20_000, retention: float = 900.0) -> None:
        self.max_events = max_events
        self.retention = retention
        self._logs: OrderedDict[str, _RunLog] = OrderedDict()  # least recently touched first

    def _log(self, run_id: str) -> _RunLog:
        log = self._logs.get(run_id)
        if log is None:
            self._forget_stale()
            log = self._logs[run_id] = _RunLog(deque(maxlen=self.max_events))
        return log

    def _forget_stale(self) -> None:
        cutoff = time.monotonic() - self.retention
        # Oldest first: stop at the first log still in use (not a scan of every run).
        while self._logs:
            run_id, log = next(iter(self._logs.items()))
            if log.touched >= cutoff:
                break
            del self._logs[run_id]

    async def publish(self, run_id: str, name: str, data: dict[str, Any]) -> int:
        log = self._log(run_id)
        seq = self._append(log, name, data)
        await self._tell(run_id, log)
        return seq

    async def publish_all(self, run_id: str, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        log = self._log(run_id)
        for name, data in events:
            self._append(log, name, data)
        await self._tell(run_id, log)

    @staticmethod
    def _append(log: _RunLog, name: str, data: dict[str, Any]) -> int:
        event = Event.of(log.next_seq, name, data)  # a snapshot, see Event
        log.next_seq += 1
        if len(log.events) == log.events.maxlen:
            log.first_seq += 1
        log.events.append(event)
        return event.seq

    async def _tell(self, run_id: str, log: _RunLog) -> None:
        """Wake the run's subscribers (once for however many new events)."""
        log.touched = time.monotonic()
        self._logs.move_to_end(run_id)
        async with log.changed:
            log.changed.notify_all()

    async def last_seq(self, run_id: str) -> int:
        log = self._logs.get(run_id)
        return log.next_seq - 1 if log else 0

    async def subscribe(self, run_id: str, after: int = 0) -> AsyncIterator[Event]:
        async for batch in self.subscribe_batches(run_id, after):
            for event in batch:
                yield event

    async def subscribe_batches(self, run_id: str, after: int = 0) -> AsyncIterator[list[Event]]:
        log = self._log(run_id)
        cursor = after
        while True:
            async with log.changed:
                await log.changed.wait_for(functools.partial(log.has_after, cursor))
            start = max(cursor + 1, log.first_seq) - log.first_seq
            batch = list(islice(log.events, start, None))
            if batch:
                cursor = batch[-1].seq
                yield batch
