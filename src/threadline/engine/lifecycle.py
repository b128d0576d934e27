"""Moves a run between statuses in storage and tells its stream: the only place a
run's status changes.

Each method is one named transition of ``domain.run_status`` and one transaction:
the run's row is locked, the transition checked against the status it has (and,
for a worker's moves, against the lease), the steps and messages the move finishes
written, the run saved with a compare-and-set on its status; then, after the
commit, its events are published. A move that cannot be made raises a
``TransitionRefused`` saying why, and writes nothing.

A claim and a turn's end, the moves of every run, may first be tried without the
lock (``storage.run_writes``): planned the same way from the row as read, and
written in one statement only if the row has not changed since (the claim's reads
just before it); if it has, the move is made the locked way as above.

Every move is shielded from cancellation and awaited to its end: a turn cancelled
while it writes its final status (a lost lease, a cancel, a shutdown) still leaves
the run in that status, with its events published, before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import SYSTEM_CLOCK, Clock, stamp
from threadline.domain.run_status import (
    CANCEL,
    CLAIM,
    COMPLETE,
    END_INCOMPLETE,
    EXPIRE,
    FAIL,
    FINISH_CANCEL,
    HAND_BACK,
    REQUIRE_ACTION,
    RESUME,
    RunStatus,
    Transition,
    transition,
)
from threadline.engine.events import EventBus, Events
from threadline.engine.objects import usage_dict
from threadline.models.base import Usage
from threadline.observability.metrics import Metrics
from threadline.schemas.stream_event import error_payload
from threadline.storage import run_creates, run_writes
from threadline.storage import runs as store
from threadline.storage.db import Database

log = logging.getLogger("threadline.engine")
S = RunStatus
_T = TypeVar("_T")

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


# --- refusals ---------------------------------------------------------------------


class TransitionRefused(Exception):
    """A transition that could not be made; nothing was written."""

    def __init__(self, run_id: str, move: Transition, why: str) -> None:
        super().__init__(f"run {run_id}: cannot {move.name}: {why}")
        self.run_id = run_id
        self.transition = move


class RunGone(TransitionRefused):
    """The run does not exist (any more)."""

    def __init__(self, run_id: str, move: Transition) -> None:
        super().__init__(run_id, move, "no such run")


class WrongStatus(TransitionRefused):
    """The run's status is not one the transition starts from (someone else moved
    it first)."""

    def __init__(self, run_id: str, move: Transition, current: RunStatus) -> None:
        super().__init__(run_id, move, f"it is {current.value}")
        self.current = current


class LeaseLost(TransitionRefused):
    """A worker's move on a run whose lease it no longer holds."""

    def __init__(self, run_id: str, move: Transition, holder: str | None) -> None:
        super().__init__(run_id, move, f"its lease is held by {holder or 'nobody'}")
        self.holder = holder


class RunExpired(TransitionRefused):
    """A claim of a run past its ``expires_at``: it must expire instead."""

    def __init__(self, run_id: str, move: Transition) -> None:
        super().__init__(run_id, move, "it is past its expiry")


# --- moves --------------------------------------------------------------------------

Work = Callable[[AsyncConnection, str, dict[str, Any]], Awaitable[Events]]
Change = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TurnEnd:
    """What a turn's end writes besides the run, made before it is written: the
    turn's steps and messages as they end, and their events (published before the
    run's own)."""

    output: run_writes.Output = field(default_factory=run_writes.Output)
    events: Events = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    """One move as asked for: what ``_write`` checks and writes."""

    move: Transition
    run_id: str
    lease: str | None
    work: Work | None
    ended: TurnEnd | None
    change: Change | None
    add_usage: Usage | None
    columns: dict[str, Any] | None
    output_closed: bool
    # May be tried without the lock first (``_write_unlocked``): ``work`` only reads.
    unlocked: bool
    # Refuses the move (raises a ``TransitionRefused``) from the run as it would
    # become, before anything is read or written.
    guard: Change | None


@dataclass
class Move:
    """What one move wrote, and the events published once it was committed."""

    run: dict[str, Any]
    counted: Usage = field(default_factory=Usage)  # the run's usage before this move
    events: Events = field(default_factory=list)


class Lifecycle:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        clock: Clock = SYSTEM_CLOCK,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.clock = clock
        self.metrics = metrics or Metrics()

    async def publish(self, run_id: str, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        await self.bus.publish_all(run_id, events)

    # The named transitions, in the order a run meets them.

    async def claim_created(
        self,
        conn: AsyncConnection,
        project: str,
        run: dict[str, Any],
        worker: str,
        lease_until: float,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``claim`` a run as it is created, inside the creating transaction
        (``conn``): it is stored already started, the row a claim of the queued run
        would leave, if its thread has no active run (``ThreadBusyError``). Returns
        it and its thread's messages as they were when it was stored. Its events are
        the creator's to publish, after the commit."""
        target = transition(RunStatus(run["status"]), CLAIM)
        claimed = dict(run, status=str(target), started_at=stamp(self.clock))
        history = await run_creates.insert_idle(
            conn, project, claimed, history=True, lease_owner=worker, lease_expires_at=lease_until
        )
        return claimed, history

    async def claim(self, run_id: str, worker: str, lease_until: float, read: Work) -> Move:
        """queued → in_progress under ``worker``'s lease; ``read`` reads what the
        turn needs as the run is claimed. A run past its expiry is refused
        (``RunExpired``): it never started, and nothing is read.

        Where the database offers it the claim is written without locking the run
        (as a turn's end is), ``read`` in autocommit just before the write: what it
        read still holds when the write finds the run's row unchanged, as a thread
        with an active run takes no messages and only the lease's holder writes the
        run's steps. If the write does not go through, the locked way claims or
        refuses the run and ``read`` reads again."""

        def unexpired(run: dict[str, Any]) -> None:
            if run.get("expires_at") is not None and int(run["expires_at"]) <= stamp(self.clock):
                raise RunExpired(run_id, CLAIM)

        return await self._apply(
            CLAIM,
            run_id,
            work=read,
            guard=unexpired,
            columns={"lease_owner": worker, "lease_expires_at": lease_until},
            unlocked=True,
        )

    async def hand_back(
        self, run_id: str, worker: str | None, *, work: Work | None = None, attempt: Any = None
    ) -> Move:
        """in_progress → queued, for another turn: from ``worker`` (whose lease it
        must still hold), or from a worker that stopped renewing it (``None``; the
        sweeper). ``attempt`` is the new ``attempts`` column value, if it counts."""
        columns = {} if attempt is None else {"attempts": attempt}
        return await self._apply(HAND_BACK, run_id, lease=worker, work=work, columns=columns)

    async def end_turn(
        self,
        move: Transition,
        run_id: str,
        worker: str,
        *,
        ended: TurnEnd,
        usage: Usage,
        change: Change,
    ) -> Move:
        """in_progress → requires_action, completed or incomplete: a turn's model
        call ended. ``ended`` is the turn's own message and steps as they end.

        Where the database offers it (``run_writes.write_unlocked``) the move is
        written without locking the run first, in one statement, if the run's row
        is unchanged since it was read; else as every other move is."""
        if move not in (REQUIRE_ACTION, COMPLETE, END_INCOMPLETE):
            raise ValueError(f"a turn cannot end with {move.name}")
        return await self._apply(
            move,
            run_id,
            lease=worker,
            ended=ended,
            add_usage=usage,
            change=change,
            # Earlier turns' steps ended when their tool outputs came, or were dropped
            # on a hand-back: what is unfinished is this turn's, which ``work`` ends.
            output_closed=True,
            unlocked=True,
        )

    async def end_incomplete(self, run_id: str, worker: str, reason: str) -> Move:
        """in_progress → incomplete before any model call: a budget is spent."""

        def mark(run: dict[str, Any]) -> None:
            run["incomplete_details"] = {"reason": reason}

        return await self._apply(END_INCOMPLETE, run_id, lease=worker, change=mark)

    async def fail(self, run_id: str, code: str, message: str, worker: str | None = None) -> Move:
        """in_progress → failed with ``last_error``."""

        def set_error(run: dict[str, Any]) -> None:
            run["last_error"] = {"code": code, "message": message}

        return await self._apply(FAIL, run_id, lease=worker, change=set_error)

    async def resume(self, run_id: str, work: Work) -> Move:
        """requires_action → queued: ``work`` records the submitted tool outputs."""

        def clear(run: dict[str, Any]) -> None:
            run["required_action"] = None

        return await self._apply(RESUME, run_id, work=work, change=clear)

    async def cancel(self, run_id: str) -> Move:
        """queued, in_progress or requires_action → cancelling."""
        return await self._apply(CANCEL, run_id)

    async def finish_cancel(self, run_id: str) -> Move:
        """cancelling → cancelled."""
        return await self._apply(FINISH_CANCEL, run_id)

    async def expire(self, run_id: str) -> Move:
        """Any unfinished status → expired."""
        return await self._apply(EXPIRE, run_id)

    # The one way they are written.

    async def _apply(
        self,
        move: Transition,
        run_id: str,
        *,
        lease: str | None = None,
        work: Work | None = None,
        ended: TurnEnd | None = None,
        change: Change | None = None,
        add_usage: Usage | None = None,
        columns: dict[str, Any] | None = None,
        output_closed: bool = False,
        unlocked: bool = False,
        guard: Change | None = None,
    ) -> Move:
        plan = _Plan(
            move,
            run_id,
            lease,
            work,
            ended,
            change,
            add_usage,
            columns,
            output_closed,
            unlocked,
            guard,
        )
        return await shielded(self._write(plan))

    async def _write(self, plan: _Plan) -> Move:
        moved = await self._write_unlocked(plan) if plan.unlocked else None
        if moved is None:
            moved = await self._write_locked(plan)
        target, run = plan.move.target, moved.run
        moved.events.append((f"thread.run.{target}", run))
        if target == S.FAILED:
            moved.events.append(("error", error_payload(run.get("last_error"))))
        await self.publish(plan.run_id, moved.events)
        if target.is_terminal:
            age = self.clock.time() - float(run["created_at"])
            self.metrics.run_ended(str(target), run.get("model"), age)
        else:
            self.metrics.run_reached(str(target), run.get("model"))
        return moved

    async def _write_locked(self, plan: _Plan) -> Move:
        """The move in one write transaction, the run's row locked from the start."""
        target = plan.move.target
        async with self.db.write() as conn:
            row = await store.lock_run(conn, plan.run_id)
            moved = self._start(plan, row)
            if plan.work is not None:
                moved.events.extend(await plan.work(conn, row.project_id, moved.run))
            if plan.ended is not None:
                await run_writes.write_output(conn, row.project_id, plan.ended.output)
                moved.events.extend(plan.ended.events)
            if target.is_terminal and not plan.output_closed:
                await self._close_output(conn, row.project_id, moved.run, target, moved)
            extra = self._conclude(plan, moved)
            await store.save_run(conn, moved.run, RunStatus(row.status), **extra)
        return moved

    async def _write_unlocked(self, plan: _Plan) -> Move | None:
        """The move planned from the run's row as read, its ``work`` (a read) done,
        and written only if the row is unchanged when it is written
        (``run_writes``); None when it was not written (refused, changed meanwhile,
        or not offered by this database): the locked way then makes it, or refuses
        it, from the row as it is once locked."""
        ended = plan.ended or TurnEnd()
        planned: list[Move] = []

        def write(row: Any) -> run_writes.RunWrite | None:
            try:
                moved = self._start(plan, row)
                moved.events.extend(ended.events)
                extra = self._conclude(plan, moved)
            except TransitionRefused:
                return None
            planned.append(moved)
            return run_writes.RunWrite(moved.run, extra, ended.output)

        async def read(conn: AsyncConnection, project_id: str) -> None:
            if plan.work is not None:
                moved = planned[-1]
                moved.events.extend(await plan.work(conn, project_id, moved.run))

        written = await run_writes.write_unlocked(self.db, plan.run_id, write, read)
        return planned[-1] if written else None

    def _start(self, plan: _Plan, row: Any) -> Move:
        """Check the move against the run's row; the run with its new status."""
        move, run_id, target = plan.move, plan.run_id, plan.move.target
        if row is None:
            raise RunGone(run_id, move)
        current = RunStatus(row.status)
        if current not in move.sources:
            raise WrongStatus(run_id, move, current)
        if plan.lease is not None and row.lease_owner != plan.lease:
            raise LeaseLost(run_id, move, row.lease_owner)
        run = dict(row.data)
        run["status"] = str(target)
        key = _RUN_STAMP.get(target)
        if key and (target != S.IN_PROGRESS or run.get(key) is None):
            run[key] = stamp(self.clock)
        if plan.guard is not None:
            plan.guard(run)
        return Move(run, Usage(int(row.prompt_tokens), int(row.completion_tokens)))

    def _conclude(self, plan: _Plan, moved: Move) -> dict[str, Any]:
        """The rest of the run's new fields; the columns to set besides its object."""
        target, run = plan.move.target, moved.run
        extra = dict(plan.columns or {})
        tally = moved.counted + (plan.add_usage or Usage())
        if plan.add_usage is not None:
            extra.update(
                prompt_tokens=tally.prompt_tokens, completion_tokens=tally.completion_tokens
            )
        if target.is_terminal:
            run["expires_at"] = None
            run["required_action"] = None
            run["usage"] = usage_dict(tally)
        if plan.change is not None:
            plan.change(run)
        if target.is_terminal or target in (S.QUEUED, S.REQUIRES_ACTION):
            extra.update(lease_owner=None, lease_expires_at=None)
        return extra

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
        ended = stamp(self.clock)
        for step in await store.steps_of(conn, run["id"]):
            if step["status"] != "in_progress":
                continue
            if step["type"] == "tool_calls" and run.get("required_action"):
                await settle_usage(conn, run["id"], step)  # its model call had finished
            step["status"] = step_status
            step[step_stamp] = ended
            if target == S.FAILED:
                step["last_error"] = run.get("last_error")
            await store.save_step(conn, project_id, step)
            moved.events.append((f"thread.run.step.{step_status}", step))
        for message in await store.run_messages(conn, run["id"]):
            if message["status"] != "in_progress":
                continue
            message["status"] = "incomplete"
            message["incomplete_at"] = ended
            message["incomplete_details"] = {"reason": reason}
            await store.save_message(conn, message)
            moved.events.append(("thread.message.incomplete", message))


async def shielded(write: Awaitable[_T]) -> _T:
    """Await ``write`` to its end even if the caller is cancelled meanwhile; then
    let the cancellation go on."""
    task = asyncio.ensure_future(write)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise  # the write itself was cancelled
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


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
