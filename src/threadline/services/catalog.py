"""Every service of one process, shared by the API and the workers: what the
routers reach through ``app.state.services``. ``threadline.wiring`` builds it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from threadline.engine.events import EventBus
from threadline.engine.worker import RunWorker
from threadline.models.base import ModelBackend
from threadline.services.assistants import AssistantService
from threadline.services.files import FileService
from threadline.services.ingestion import IngestionWorker
from threadline.services.keys import KeyService
from threadline.services.messages import MessageService
from threadline.services.runs import RunService
from threadline.services.threads import ThreadService
from threadline.services.vector_store_files import VectorStoreFileService
from threadline.services.vector_stores import VectorStoreService
from threadline.settings import Settings
from threadline.storage.db import Database

log = logging.getLogger("threadline")


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
    _warming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.db.migrate()
        await self.worker.start()
        await self.ingestion.start()
        self._warming = asyncio.create_task(self._warm_up(), name="model-warm-up")

    async def _warm_up(self) -> None:
        try:
            await self.backend.warm_up()
        except Exception:
            log.exception("the model backend could not warm up; runs will report the error")

    async def aclose(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        await self.ingestion.stop()
        await self.worker.stop()
        await self.backend.aclose()
        await self.bus.aclose()
        await self.db.dispose()
