"""The run worker: the queue's executions plus the sweeper, started and stopped
with the server. On start it picks up every run a previous process left queued."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from threadline.engine.executor import Executor
from threadline.engine.lifecycle import Lifecycle
from threadline.engine.sweeper import Sweeper
from threadline.engine.tools import Toolbox
from threadline.models.base import ModelBackend
from threadline.queue.base import RunQueue
from threadline.settings import Settings
from threadline.storage.db import Database

log = logging.getLogger("threadline.worker")


class RunWorker:
    def __init__(
        self,
        db: Database,
        lifecycle: Lifecycle,
        queue: RunQueue,
        backend: ModelBackend,
        settings: Settings,
        toolbox: Toolbox | None = None,
    ) -> None:
        self.worker_id = "wrk_" + secrets.token_hex(8)
        self.settings = settings
        self.queue = queue
        self.executor = Executor(db, lifecycle, backend, settings, self.worker_id, toolbox)
        self.sweeper = Sweeper(db, lifecycle, queue)
        self._sweeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.queue.start(self.executor.execute)
        waiting = await self.sweeper.requeue_waiting()
        if waiting:
            log.info("picked up %d queued runs", waiting)
        self._sweeping = asyncio.create_task(
            self.sweeper.run_forever(self.settings.sweep_interval_seconds), name="sweeper"
        )

    async def stop(self, grace: float = 5.0) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
        await self.queue.stop(grace)
