"""Ends what has outlived its ``expires_at``: pending uploads become ``expired``
and lose their parts; files given ``expires_after`` are deleted, row and bytes.
Also removes the parts an ended upload still has (its process stopped before it
removed them)."""

from __future__ import annotations

import asyncio
import logging

from threadline.domain.clock import now
from threadline.errors import NotFoundError
from threadline.services.files import FileService
from threadline.services.uploads import UploadService
from threadline.storage import uploads as store
from threadline.storage.db import Database

log = logging.getLogger("threadline.expiry")
BATCH = 100


class ExpirySweeper:
    def __init__(self, db: Database, files: FileService, uploads: UploadService) -> None:
        self.db = db
        self.files = files
        self.uploads = uploads
        self._task: asyncio.Task[None] | None = None

    def start(self, interval: float) -> None:
        self._task = asyncio.create_task(self._run(interval), name="expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("expiry sweep failed")
            await asyncio.sleep(interval)

    async def sweep(self) -> None:
        async with self.db.read() as conn:
            uploads = await store.overdue_uploads(conn, now(), BATCH)
            files = await store.overdue_files(conn, now(), BATCH)
            leftover = await store.ended_upload_parts(conn, BATCH)
        for project, upload_id in uploads:
            await self.uploads.expire(project, upload_id)
        for project, file_id in files:
            try:
                await self.files.delete(project, file_id)
            except NotFoundError:
                continue  # deleted meanwhile
            log.info("file %s expired and was deleted", file_id)
        if leftover:
            await self.uploads.discard_parts(leftover)
