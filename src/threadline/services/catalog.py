"""Every service of one process, shared by the API and the workers: what the
routers reach through ``app.state.services``. ``threadline.wiring`` builds it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from threadline.engine.events import EventBus
from threadline.engine.tools.code_interpreter import CodeInterpreter
from threadline.engine.worker import RunWorker
from threadline.errors import NotReadyError
from threadline.models.base import ModelBackend
from threadline.services.assistants import AssistantService
from threadline.services.expiry import ExpirySweeper
from threadline.services.files import FileService
from threadline.services.ingestion import IngestionWorker
from threadline.services.keys import KeyService
from threadline.services.messages import MessageService
from threadline.services.metrics import MetricsService
from threadline.services.run_admin import RunAdmin
from threadline.services.runs import RunService
from threadline.services.threads import ThreadService
from threadline.services.uploads import UploadService
from threadline.services.vector_store_files import VectorStoreFileService
from threadline.services.vector_stores import VectorStoreService
from threadline.settings import Settings
from threadline.storage.db import Database

log = logging.getLogger("threadline")
READY_TIMEOUT = 2.0


@dataclass
class Services:
    settings: Settings
    db: Database
    bus: EventBus
    backend: ModelBackend
    keys: KeyService
    assistants: AssistantService
    threads: ThreadService
    messages: MessageService
    files: FileService
    runs: RunService
    worker: RunWorker
    vector_stores: VectorStoreService
    vector_store_files: VectorStoreFileService
    ingestion: IngestionWorker
    uploads: UploadService
    expiry: ExpirySweeper
    metrics: MetricsService
    run_admin: RunAdmin
    code_interpreter: CodeInterpreter | None = None
    _warming: asyncio.Task[None] | None = None

    async def migrate(self) -> None:
        """Bring the database's schema, and the queue's, up to date."""
        await self.db.migrate()
        await self.worker.queue.migrate()

    async def start(self, *, api: bool = True) -> None:
        """Start this process's roles: the API's connections, and the worker (runs
        and sweeps) unless ``settings.worker`` is off."""
        await self.migrate()
        await self.worker.queue.open()
        if self.settings.worker:
            await self.worker.start()
            await self.ingestion.start()
            self.expiry.start(self.settings.expiry_sweep_seconds)
            if self.code_interpreter is not None:
                # Chosen in the background (the log says which, or why none):
                # the first run that needs it waits.
                self.code_interpreter.start()
            self._warming = asyncio.create_task(self._warm_up(), name="model-warm-up")
        elif not api:
            raise RuntimeError("a process with neither the API nor the worker does nothing")

    async def check_ready(self) -> None:
        """Raise ``NotReadyError`` naming the first of the database, the event bus,
        the queue and the object store that cannot be reached."""
        for name, ping in (
            ("database", self.db.ping),
            ("event bus", self.bus.ping),
            ("queue", self.worker.queue.ping),
            ("object store", self.files.blobs.ping),
        ):
            try:
                await asyncio.wait_for(ping(), READY_TIMEOUT)
            except Exception as exc:
                raise NotReadyError(
                    f"The {name} cannot be reached: {exc or type(exc).__name__}"
                ) from exc

    async def _warm_up(self) -> None:
        try:
            await self.backend.warm_up()
        except Exception:
            log.exception("the model backend could not warm up; runs will report the error")

    async def aclose(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        await self.expiry.stop()
        await self.ingestion.stop()
        await self.worker.stop(self.settings.worker_grace_seconds)
        if self.code_interpreter is not None:
            await self.code_interpreter.aclose()
        await self.worker.queue.aclose()
        await self.backend.aclose()
        await self.bus.aclose()
        await self.files.blobs.aclose()
        await self.db.dispose()
