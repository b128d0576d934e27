"""``include[]`` for run steps: a file_search call's results carry their
``content`` only when asked for (on run create, steps list and step retrieve).
Steps are stored with it; this is where it is left out."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from threadline.schemas.stream_event import Event

CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def wants_content(include: Sequence[str] | None) -> bool:
    return bool(include) and CONTENT in (include or ())


def shown_step(step: dict[str, Any], include: Sequence[str] | None) -> dict[str, Any]:
    """The step (or step delta) as the caller asked for it."""
    if wants_content(include):
        return step
    details = step.get("step_details") or (step.get("delta") or {}).get("step_details")
    if not details or details.get("type") != "tool_calls":
        return step
    if not any(c.get("type") == "file_search" for c in details.get("tool_calls") or []):
        return step
    step = copy.deepcopy(step)
    details = step.get("step_details") or step["delta"]["step_details"]
    for call in details["tool_calls"]:
        if call.get("type") == "file_search":
            for result in (call.get("file_search") or {}).get("results") or []:
                result.pop("content", None)
    return step


def shown_event(event: Event, include: Sequence[str] | None) -> Event:
    """A streamed event as the caller asked for it (only step events change)."""
    if wants_content(include) or not event.name.startswith("thread.run.step."):
        return event
    if '"file_search"' not in event.payload:
        return event
    return Event.of(event.seq, event.name, shown_step(event.data, include))
