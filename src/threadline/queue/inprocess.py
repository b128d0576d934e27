"""The default queue: an asyncio queue and up to N concurrent executions in this
process. Durable state is in the database; the sweeper re-queues what a crash
left behind, and start-up re-enqueues every queued run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from threadline.queue.base import Execute, RunQueue

log = logging.getLogger("threadline.queue")


class InProcessQueue(RunQueue):
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._dispatcher: asyncio.Task[None] | None = None

    async def start(self, execute: Execute) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(execute), name="run-dispatcher")

    async def enqueue(self, run_id: str) -> None:
        self._put(run_id)

    def _put(self, run_id: str) -> None:
        if run_id not in self._pending:
            self._pending.add(run_id)
            self._queue.put_nowait(run_id)

    def _requeue(self, run_id: str, _done: asyncio.Task[None]) -> None:
        self._put(run_id)

    async def _dispatch(self, execute: Execute) -> None:
        while True:
            run_id = await self._queue.get()
            self._pending.discard(run_id)
            if run_id in self._running:
                # Still finishing its previous turn here: hand it over once that ends.
                self._running[run_id].add_done_callback(functools.partial(self._requeue, run_id))
                continue
            await self._slots.acquire()
            task = asyncio.create_task(self._execute(execute, run_id), name=f"run-{run_id}")
            self._running[run_id] = task

    async def _execute(self, execute: Execute, run_id: str) -> None:
        try:
            await execute(run_id)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("executing %s failed", run_id)
        finally:
            self._running.pop(run_id, None)
            self._slots.release()

    async def abort(self, run_id: str) -> bool:
        task = self._running.get(run_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def stop(self, grace: float) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        running = list(self._running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=grace)
