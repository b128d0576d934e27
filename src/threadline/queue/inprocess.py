"""The default queue: an asyncio queue and up to N concurrent executions in this
process. Durable state is in the database; the sweeper re-queues what a crash
left behind, and start-up re-enqueues every queued run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

from threadline.queue.base import Execute, RunQueue, Slot

log = logging.getLogger("threadline.queue")


class InProcessQueue(RunQueue):
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._free = concurrency
        self._slot_freed = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self, execute: Execute) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(execute), name="run-dispatcher")

    async def enqueue(self, run_id: str) -> None:
        self._put(run_id)

    def reserve(self) -> Slot | None:
        if self._stopped or self._dispatcher is None or self._free <= 0 or self._pending:
            return None
        self._free -= 1
        return _InProcessSlot(self)

    def _put(self, run_id: str) -> None:
        if run_id not in self._pending:
            self._pending.add(run_id)
            self._queue.put_nowait(run_id)

    def _requeue(self, run_id: str, _done: asyncio.Task[None]) -> None:
        self._put(run_id)

    def _release(self) -> None:
        self._free += 1
        self._slot_freed.set()

    async def _dispatch(self, execute: Execute) -> None:
        while True:
            run_id = await self._queue.get()
            self._pending.discard(run_id)
            if run_id in self._running:
                # Still finishing its previous turn here: hand it over once that ends.
                self._running[run_id].add_done_callback(functools.partial(self._requeue, run_id))
                continue
            while self._free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            self._free -= 1
            self._launch(run_id, functools.partial(execute, run_id))

    def _launch(self, run_id: str, execution: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.create_task(self._execute(run_id, execution), name=f"run-{run_id}")
        self._running[run_id] = task

    async def _execute(self, run_id: str, execution: Callable[[], Awaitable[None]]) -> None:
        try:
            await execution()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("executing %s failed", run_id)
        finally:
            self._running.pop(run_id, None)
            self._release()

    async def abort(self, run_id: str) -> bool:
        task = self._running.get(run_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def stop(self, grace: float) -> None:
        self._stopped = True
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


class _InProcessSlot(Slot):
    def __init__(self, queue: InProcessQueue) -> None:
        self._queue: InProcessQueue | None = queue

    def _take(self) -> InProcessQueue:
        if self._queue is None:
            raise RuntimeError("this slot was already used")
        queue, self._queue = self._queue, None
        return queue

    def start(self, run_id: str, execution: Callable[[], Awaitable[None]]) -> None:
        self._take()._launch(run_id, execution)

    def release(self) -> None:
        self._take()._release()
