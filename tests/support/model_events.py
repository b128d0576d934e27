"""Helpers for tests that drive a model backend's event stream directly."""

from __future__ import annotations

from threadline.models.base import Finish, ModelBackend, ModelEvent, ModelRequest, TextDelta


async def collect(backend: ModelBackend, request: ModelRequest) -> list[ModelEvent]:
    """Every event of one model call, to the end."""
    return [event async for event in backend.stream(request)]


def text_of(events: list[ModelEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def finish_of(events: list[ModelEvent]) -> Finish:
    """The call's one ``Finish``, which must come last."""
    assert isinstance(events[-1], Finish)
    assert sum(isinstance(event, Finish) for event in events) == 1
    return events[-1]
