"""Finds runs nobody is looking after: expires the overdue, re-queues (or fails)
runs whose worker stopped renewing its lease, finishes stranded cancels, and now
and then hands every queued run to the queue again (a run whose job was lost, its
defer cut off by a database restart, would otherwise wait for a worker's start;
a shared queue keeps one job per run however often asked)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import stamp
from threadline.domain.run_status import ACTIVE, RunStatus
from threadline.engine.events import Events
from threadline.engine.lifecycle import Lifecycle, TransitionRefused, WrongStatus
from threadline.observability.logs import run_context
from threadline.queue.base import RunQueue
from threadline.storage import runs as store
from threadline.storage.db import Database

log = logging.getLogger("threadline.sweeper")
S = RunStatus
MAX_ATTEMPTS = 3
REQUEUE_SECONDS = 30.0


class Sweeper:
    def __init__(self, db: Database, lifecycle: Lifecycle, queue: RunQueue) -> None:
        self.db = db
        self.lifecycle = lifecycle
        self.clock = lifecycle.clock
        self.queue = queue
        self._requeued_at = self.clock.time()  # the worker's start queues them all

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(interval)

    async def sweep(self) -> None:
        now = self.clock.time()
        if now - self._requeued_at >= REQUEUE_SECONDS:
            self._requeued_at = now
            await self.requeue_waiting()
        async with self.db.read() as conn:
            overdue = await store.run_ids_with_status(
                conn, ACTIVE, expires_before=stamp(self.clock)
            )
            lapsed = await store.run_ids_with_status(
                conn, {S.IN_PROGRESS, S.CANCELLING}, lease_before=self.clock.time()
            )
        for run_id in overdue:
            try:
                await self.lifecycle.expire(run_id)
            except TransitionRefused:
                continue  # it ended meanwhile
            await self.queue.abort(run_id)
        # A worker whose heartbeat stopped: its runs now, not at their lease's end.
        stalled = await self.queue.release_stalled()
        for run_id in dict.fromkeys([*stalled, *lapsed]):
            await self._recover(run_id)

    async def _recover(self, run_id: str) -> None:
        """A run whose worker stopped renewing its lease: finish its cancel, or
        queue it again, or, after ``MAX_ATTEMPTS``, fail it."""
        with run_context(run_id):
            await self._take_over(run_id)

    async def _take_over(self, run_id: str) -> None:
        try:
            await self.lifecycle.hand_back(
                run_id, None, work=_retry_or_give_up, attempt=store.R.attempts + 1
            )
        except _GiveUp:
            with contextlib.suppress(TransitionRefused):
                await self.lifecycle.fail(
                    run_id, "server_error", "The run's worker stopped responding too many times."
                )
                self.lifecycle.metrics.lease_takeover("failed")
            return
        except WrongStatus as refused:
            if refused.current == S.CANCELLING:
                with contextlib.suppress(TransitionRefused):
                    await self.lifecycle.finish_cancel(run_id)
                    self.lifecycle.metrics.lease_takeover("cancelled")
            elif refused.current == S.QUEUED:
                await self.queue.enqueue(run_id)  # its execution died before it began
            return
        except TransitionRefused:
            return
        self.lifecycle.metrics.lease_takeover("requeued")
        log.warning("run %s lost its worker; queued again", run_id)
        await self.queue.enqueue(run_id)

    async def requeue_waiting(self) -> int:
        """Hand every queued run to the queue (after a start or restart)."""
        async with self.db.read() as conn:
            queued = await store.run_ids_with_status(conn, {S.QUEUED})
        for run_id in queued:
            await self.queue.enqueue(run_id)
        return len(queued)


class _GiveUp(Exception):
    pass


async def _retry_or_give_up(conn: AsyncConnection, _project: str, run: dict[str, Any]) -> Events:
    row = await store.lock_run(conn, run["id"])
    if row is not None and row.attempts + 1 >= MAX_ATTEMPTS:
        raise _GiveUp
    await store.delete_unfinished_output(conn, run["id"])
    return []
