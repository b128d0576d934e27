"""Every service, built once from the settings and shared by the API and workers."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from threadline.engine.events import EventBus, InMemoryEventBus
from threadline.engine.lifecycle import Lifecycle
from threadline.engine.worker import RunWorker
from threadline.models.base import ModelBackend
from threadline.models.registry import build_backend
from threadline.queue.inprocess import InProcessQueue
from threadline.services.assistants import AssistantService
from threadline.services.files import FileService
from threadline.services.keys import KeyService
from threadline.services.messages import MessageService
from threadline.services.references import References
from threadline.services.runs import RunService
from threadline.services.threads import ThreadService
from threadline.settings import Settings
from threadline.storage.blobs import LocalBlobStore
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
    _warming: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings, backend: ModelBackend | None = None) -> Services:
        db = Database(settings.resolved_database_url)
        refs = References()
        blobs = LocalBlobStore(settings.files_dir)
        bus = InMemoryEventBus()
        lifecycle = Lifecycle(db, bus)
        queue = InProcessQueue(settings.worker_concurrency)
        model = backend or build_backend(settings)
        threads = ThreadService(db, refs)
        worker = RunWorker(db, lifecycle, queue, model, settings)
        return cls(
            settings=settings,
            db=db,
            bus=bus,
            backend=model,
            keys=KeyService(db, settings.static_keys(), settings.key_cache_seconds),
            assistants=AssistantService(db, refs),
            threads=threads,
            messages=MessageService(db, refs),
            files=FileService(db, blobs, settings.max_upload_bytes),
            runs=RunService(db, refs, threads, lifecycle, queue, worker.executor, model, settings),
            worker=worker,
        )

    async def start(self) -> None:
        await self.db.migrate()
        await self.worker.start()
        self._warming = asyncio.create_task(self._warm_up(), name="model-warm-up")

    async def _warm_up(self) -> None:
        try:
            await self.backend.warm_up()
        except Exception:
            log.exception("the model backend could not warm up; runs will report the error")

    async def aclose(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        await self.worker.stop()
        await self.backend.aclose()
        await self.bus.aclose()
        await self.db.dispose()
