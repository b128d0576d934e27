"""Server-sent events for runs: ``id:`` / ``event:`` / ``data:`` frames, then
``event: done`` / ``data: [DONE]`` once the run pauses or ends. A client that
goes away only ends its own stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from fastapi.responses import StreamingResponse
from prometheus_client import Gauge

from threadline.api.step_results import shown_event
from threadline.schemas.stream_event import DONE_SSE, SEGMENT_END, Event, error_payload


class EventSource(Protocol):
    """Where a run's events come from (the event bus). A bus that may lose events
    (a publisher gave up) sets ``stale_after`` and yields an empty batch whenever
    it has been quiet for a while."""

    stale_after: float | None

    def subscribe_batches(self, run_id: str, after: int = 0) -> AsyncIterator[list[Event]]: ...


Settle = Callable[[int], Awaitable[list[Event] | None]]
"""The stored run's closing events (numbered after the given one) if it paused or
ended; ``None`` while it goes on."""


HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _frames(
    bus: EventSource,
    run_id: str,
    after: int,
    lead: list[Event] | None,
    include: Sequence[str] | None,
    opened: Gauge | None,
    settle: Settle | None,
) -> AsyncIterator[str]:
    if lead is not None:  # the whole stream, without waiting for more
        yield "".join(event.sse() for event in lead) + DONE_SSE
        return
    if opened is not None:
        opened.inc()
    cursor, heard = after, time.monotonic()
    try:
        # The events that are there go out together, in one write.
        async for batch in bus.subscribe_batches(run_id, after):
            if not batch:
                # Quiet. Past the time a publisher waits for the bus, events that
                # are not here were given up on: a run that paused or ended
                # meanwhile is told from its stored state (then ``done``).
                stale = bus.stale_after
                if settle is None or stale is None or time.monotonic() - heard < stale:
                    continue
                heard = time.monotonic()
                closing = await settle(cursor)
                if closing is not None:
                    yield "".join(event.sse() for event in closing) + DONE_SSE
                    return
                continue
            cursor, heard = batch[-1].seq, time.monotonic()
            frames = []
            for event in batch:
                frames.append(shown_event(event, include).sse())
                if event.name in SEGMENT_END:
                    yield "".join(frames) + DONE_SSE
                    return
            yield "".join(frames)
    finally:
        if opened is not None:
            opened.dec()


def run_stream(
    bus: EventSource,
    run_id: str,
    after: int = 0,
    lead: list[Event] | None = None,
    include: Sequence[str] | None = None,
    opened: Gauge | None = None,
    settle: Settle | None = None,
) -> StreamingResponse:
    """The run's events from after ``after`` (``include``: the run step
    ``include[]`` values the stream's creator asked for; ``opened``: the gauge of
    open streams; ``settle``: the stored run's closing events, for a stream whose
    events stopped coming)."""
    return StreamingResponse(
        _frames(bus, run_id, after, lead, include, opened, settle),
        media_type="text/event-stream",
        headers=HEADERS,
    )


def snapshot_events(seq: int, run: dict[str, Any]) -> list[Event]:
    """The stored run as its status event(s), for a stream whose buffer is gone."""
    events = [Event.of(seq, f"thread.run.{run['status']}", run)]
    if run["status"] == "failed":
        events.append(Event.of(seq + 1, "error", error_payload(run.get("last_error"))))
    return events
