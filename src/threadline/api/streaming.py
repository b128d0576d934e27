"""Server-sent events for runs: ``id:`` / ``event:`` / ``data:`` frames, then
``event: done`` / ``data: [DONE]`` once the run pauses or ends. A client that
goes away only ends its own stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from fastapi.responses import StreamingResponse
from prometheus_client import Gauge

from threadline.api.step_results import shown_event
from threadline.schemas.stream_event import DONE_SSE, SEGMENT_END, Event, error_payload


class EventSource(Protocol):
    """Where a run's events come from (the event bus)."""

    def subscribe_batches(self, run_id: str, after: int = 0) -> AsyncIterator[list[Event]]: ...


HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _frames(
    bus: EventSource,
    run_id: str,
    after: int,
    lead: list[Event] | None,
    include: Sequence[str] | None,
    opened: Gauge | None,
) -> AsyncIterator[str]:
    if lead is not None:  # the whole stream, without waiting for more
        yield "".join(event.sse() for event in lead) + DONE_SSE
        return
    if opened is not None:
        opened.inc()
    try:
        # The events that are there go out together, in one write.
        async for batch in bus.subscribe_batches(run_id, after):
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
) -> StreamingResponse:
    """The run's events from after ``after`` (``include``: the run step
    ``include[]`` values the stream's creator asked for; ``opened``: the gauge of
    open streams)."""
    return StreamingResponse(
        _frames(bus, run_id, after, lead, include, opened),
        media_type="text/event-stream",
        headers=HEADERS,
    )


def snapshot_events(seq: int, run: dict[str, Any]) -> list[Event]:
    """The stored run as its status event(s), for a stream whose buffer is gone."""
    events = [Event.of(seq, f"thread.run.{run['status']}", run)]
    if run["status"] == "failed":
        events.append(Event.of(seq + 1, "error", error_payload(run.get("last_error"))))
    return events
