"""Moves a run between statuses in storage and tells its stream.

Each move is one transaction: the run (compare-and-set on its status), its
unfinished steps and messages, then — after the commit — the events. The API
(cancel, submit), the executor and the sweeper all move runs through here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import now
from threadline.domain.run_status import RunStatus, can_move
from threadline.engine.events import EventBus, Events
from threadline.engine.objects import usage_dict
from threadline.models.base import Usage
from threadline.storage import runs as store
from threadline.storage.db import Database

log = logging.getLogger("threadline.engine")
S = RunStatus

# For each terminal status: the step status, the step timestamp, the message reason.
_ENDINGS: dict[RunStatus, tuple[str, str, str]] = {
    S.CANCELLED: ("cancelled", "cancelled_at", "run_cancelled"),
    S.FAILED: ("failed", "failed_at", "run_failed"),
    S.EXPIRED: ("expired", "expired_at", "run_expired"),
    S.INCOMPLETE: ("cancelled", "cancelled_at", "max_tokens"),
    S.COMPLETED: ("completed", "completed_at", "run_cancelled"),
}
_RUN_STAMP = {
    S.CANCELLED: "cancelled_at",
    S.FAILED: "failed_at",
    S.COMPLETED: "completed_at",
    S.IN_PROGRESS: "started_at",
}


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


Work = Callable[[AsyncConnection, str, dict[str, Any]], Awaitable[Events]]


@dataclass
class Move:
    """What one move wrote, and the events to publish once it is committed."""

    run: dict[str, Any]
    counted: Usage = field(default_factory=Usage)  # the run's usage before this move
    events: Events = field(default_factory=list)


class Lifecycle:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db = db
        self.bus = bus

    async def publish(self, run_id: str, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        await self.bus.publish_all(run_id, events)

    async def move(
        self,
        run_id: str,
        target: RunStatus,
        *,
        allowed: Iterable[RunStatus] | None = None,
        change: Callable[[dict[str, Any]], None] | None = None,
        work: Work | None = None,
        add_usage: Usage | None = None,
        columns: dict[str, Any] | None = None,
        lease_owner: str | None = None,
        output_closed: bool = False,
    ) -> Move | None:
        """Move the run to ``target`` if its status allows; ``None`` if it does not
        (someone else moved it first) or ``lease_owner`` no longer holds it.

        ``work`` runs inside the same transaction first (writing steps and
        messages) and returns the events those writes make. A move to a terminal
        status ends the run's unfinished steps and messages, unless the caller says
        ``work`` already has (``output_closed``)."""
        async with self.db.write() as conn:
            row = await store.lock_run(conn, run_id)
            if row is None:
                return None
            current = RunStatus(row.status)
            if allowed is not None and current not in set(allowed):
                return None
            if lease_owner is not None and row.lease_owner != lease_owner:
                return None
            if not can_move(current, target):
                return None
            run = dict(row.data)
            run["status"] = str(target)
            stamp = _RUN_STAMP.get(target)
            if stamp and (target != S.IN_PROGRESS or run.get(stamp) is None):
                run[stamp] = now()
            counted = Usage(int(row.prompt_tokens), int(row.completion_tokens))
            moved = Move(run, counted)
            if work is not None:
                moved.events.extend(await work(conn, row.project_id, run))
            extra = dict(columns or {})
            tally = counted + (add_usage or Usage())
            if add_usage is not None:
                extra.update(
                    prompt_tokens=tally.prompt_tokens, completion_tokens=tally.completion_tokens
                )
            if target.is_terminal:
                if not output_closed:
                    await self._close_output(conn, row.project_id, run, target, moved)
                run["expires_at"] = None
                run["required_action"] = None
                run["usage"] = {
                    "prompt_tokens": tally.prompt_tokens,
                    "completion_tokens": tally.completion_tokens,
                    "total_tokens": tally.total_tokens,
                }
            if change is not None:
                change(run)
            if target.is_terminal or target == S.QUEUED:
                extra.update(lease_owner=None, lease_expires_at=None)
            await store.save_run(conn, run, current, **extra)
        moved.events.append((f"thread.run.{target}", run))
        if target == S.FAILED:
            moved.events.append(("error", error_payload(run.get("last_error"))))
        await self.publish(run_id, moved.events)
        return moved

    async def _close_output(
        self,
        conn: AsyncConnection,
        project_id: str,
        run: dict[str, Any],
        target: RunStatus,
        moved: Move,
    ) -> None:
        """End the run's unfinished steps and messages the way ``target`` ends it."""
        step_status, step_stamp, reason = _ENDINGS[target]
        stamp = now()
        for step in await store.steps_of(conn, run["id"]):
            if step["status"] != "in_progress":
                continue
            if step["type"] == "tool_calls" and run.get("required_action"):
                await settle_usage(conn, run["id"], step)  # its model call had finished
            step["status"] = step_status
            step[step_stamp] = stamp
            if target == S.FAILED:
                step["last_error"] = run.get("last_error")
            await store.save_step(conn, project_id, step)
            moved.events.append((f"thread.run.step.{step_status}", step))
        for message in await store.run_messages(conn, run["id"]):
            if message["status"] != "in_progress":
                continue
            message["status"] = "incomplete"
            message["incomplete_at"] = stamp
            message["incomplete_details"] = {"reason": reason}
            await store.save_message(conn, message)
            moved.events.append(("thread.message.incomplete", message))


async def settle_usage(conn: AsyncConnection, run_id: str, step: dict[str, Any]) -> None:
    """Give a tool-call step, as it ends, the usage of the model call that made it.

    While it waits for outputs the step shows none (the spec: ``null`` while
    ``in_progress``); that call's usage is what the run has counted so far less
    what the run's other steps show."""
    row = await store.lock_run(conn, run_id)
    prompt, completion = int(row.prompt_tokens), int(row.completion_tokens)
    for other in await store.steps_of(conn, run_id):
        if other["id"] != step["id"] and other.get("usage"):
            prompt -= int(other["usage"]["prompt_tokens"])
            completion -= int(other["usage"]["completion_tokens"])
    step["usage"] = usage_dict(Usage(max(prompt, 0), max(completion, 0)))
