"""A run's stream events as they go over the wire: server-sent events with the
per-run sequence as ``id:``, the events after which a stream pauses, and the
``error`` event that follows a failure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A run's stream pauses (the SSE response ends with `done`) after these events;
# `thread.run.failed` is always followed by `error`, which ends it.
SEGMENT_END = frozenset(
    {
        "thread.run.requires_action",
        "thread.run.completed",
        "thread.run.incomplete",
        "thread.run.cancelled",
        "thread.run.expired",
        "error",
    }
)


@dataclass(frozen=True)
class Event:
    """One event; its data is kept as the JSON it had when it was made (a snapshot:
    the engine goes on changing its steps and messages after telling)."""

    seq: int
    name: str
    payload: str

    @classmethod
    def of(cls, seq: int, name: str, data: dict[str, Any]) -> Event:
        return cls(seq, name, json.dumps(data, separators=(",", ":"), ensure_ascii=False))

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.payload)  # type: ignore[no-any-return]

    def sse(self) -> str:
        return f"id: {self.seq}\nevent: {self.name}\ndata: {self.payload}\n\n"


DONE_SSE = "event: done\ndata: [DONE]\n\n"

_ERROR_TYPES = {
    "invalid_prompt": "invalid_request_error",
    "rate_limit_exceeded": "rate_limit_error",
}


def error_payload(last_error: dict[str, Any] | None) -> dict[str, Any]:
    """The ``error`` stream event that follows ``thread.run.failed``."""
    error = last_error or {"code": "server_error", "message": "The run failed."}
    return {
        "message": error["message"],
        "type": _ERROR_TYPES.get(error["code"], "server_error"),
        "param": None,
        "code": error["code"],
    }
