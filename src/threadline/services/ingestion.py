"""Ingestion of the files added to vector stores: background, bounded, durable.

A store file is ``in_progress`` until it has been parsed, chunked, embedded and
indexed through the ``Pipeline``; then ``completed``, or ``failed`` with
``last_error``. Each file is taken with a lease (owner, expiry, attempts) renewed
while it is worked on: a process killed mid-ingestion leaves a lease that lapses,
and whichever process sweeps next takes the file up again; after
``INGEST_MAX_ATTEMPTS`` interrupted attempts the file fails with ``server_error``.
None stays ``in_progress`` forever.

On a shared queue (``THREADLINE_QUEUE=procrastinate``) ingestion goes through it: the
process that added files (an API process too) defers one job per waiting file, any
worker process takes the job and ingests the file under the same lease, and each
worker's sweep defers a job again for a file whose lease lapsed (its worker died)
or whose job was lost. Without one, this process's own loop takes the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from typing import Any, Literal

from threadline.domain.clock import SYSTEM_CLOCK, Clock
from threadline.domain.limits import INGEST_MAX_ATTEMPTS
from threadline.queue.base import RunQueue
from threadline.retrieval.pipeline import Attributes as Attributes
from threadline.retrieval.pipeline import FileRejected as FileRejected
from threadline.retrieval.pipeline import Hit as Hit
from threadline.retrieval.pipeline import Pipeline as Pipeline
from threadline.storage import objects
from threadline.storage import vector_stores as store
from threadline.storage.blobs import BlobMissingError, BlobStore
from threadline.storage.db import Database

log = logging.getLogger("threadline.ingestion")
FailureCode = Literal["unsupported_file", "invalid_file", "server_error"]
LARGE_FILE_CHUNKS = 200
"""From this many chunks on, ingestion logs its progress."""


class IngestionWorker:
    """Runs ingestions in this process, at most ``concurrency`` at once."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        pipeline: Pipeline,
        *,
        concurrency: int,
        lease_seconds: float,
        sweep_interval: float,
        clock: Clock = SYSTEM_CLOCK,
        queue: RunQueue | None = None,
    ) -> None:
        self.db = db
        # The shared queue's ingestion jobs, when it has them.
        self.queue = queue if queue is not None and queue.ingests else None
        self._deferring: set[asyncio.Task[int]] = set()
        self.blobs = blobs
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.sweep_interval = sweep_interval
        self.clock = clock
        self.owner = "ing_" + secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._active: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Ingest in this process (a worker): the queue's jobs, or the loop's own."""
        if self.queue is not None:
            await self.queue.start_ingestion(self._job, self.concurrency)
        self._loop = asyncio.create_task(self._run(), name="ingestion")

    def notify(self) -> None:
        """New files wait: look now rather than at the next sweep."""
        if self.queue is None:
            self._wake.set()
            return
        task = asyncio.create_task(self._defer_waiting(), name="ingestion-defer")
        self._deferring.add(task)
        task.add_done_callback(self._deferring.discard)

    async def _defer_waiting(self) -> int:
        """A queue job for every file waiting (one per file however often asked)."""
        assert self.queue is not None
        try:
            async with self.db.read() as conn:
                waiting = await store.claimable(conn, self.clock.time())
            for item in waiting:
                await self.queue.enqueue_ingestion(
                    item.project_id, item.vector_store_id, item.file_id
                )
        except Exception:
            log.exception("could not queue ingestions; a worker's sweep will")
            return 0
        return len(waiting)

    async def _job(self, project_id: str, vector_store_id: str, file_id: str) -> None:
        """The queue's job for one file, in a worker."""
        log.info("ingesting %s into %s", file_id, vector_store_id)
        await self._take(store.Claimable(project_id, vector_store_id, file_id, 0))

    async def stop(self) -> None:
        if self.queue is not None:
            await self.queue.stop_ingestion()
        tasks: list[asyncio.Task[Any]] = [*self._active.values(), *self._deferring]
        if self._loop is not None:
            tasks.append(self._loop)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            async with self.db.write() as conn:
                released = await store.release(conn, self.owner)
        except Exception:
            log.exception("could not hand back the ingestion leases; they will lapse")
        else:
            if released:
                log.info("handed back %d unfinished ingestions", released)

    async def idle(self) -> None:
        """Wait until nothing is waiting or being ingested (tests, shutdown)."""
        while True:
            await self.sweep()
            if not self._active:
                return
            await asyncio.gather(*self._active.values(), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                if self.queue is not None:
                    await self._defer_waiting()
                else:
                    await self.sweep()
            except Exception:
                log.exception("ingestion sweep failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sweep_interval)

    async def sweep(self) -> int:
        """Start ingesting waiting files, as many as there are free places."""
        free = self.concurrency - len(self._active)
        if free <= 0:
            return 0
        async with self.db.read() as conn:
            waiting = await store.claimable(conn, self.clock.time(), free + len(self._active))
        started = 0
        for item in waiting:
            key = (item.vector_store_id, item.file_id)
            if key in self._active or started >= free:
                continue
            task = asyncio.create_task(self._take(item), name=f"ingest-{item.file_id}")
            self._active[key] = task
            task.add_done_callback(functools.partial(self._done, key))
            started += 1
        return started

    def _done(self, key: tuple[str, str], _task: asyncio.Task[None]) -> None:
        self._active.pop(key, None)
        self._wake.set()

    async def _take(self, item: store.Claimable) -> None:
        now = self.clock.time()
        async with self.db.write() as conn:
            claimed = await store.claim(
                conn,
                item.vector_store_id,
                item.file_id,
                owner=self.owner,
                until=now + self.lease_seconds,
                now=now,
            )
        if claimed is None:
            return  # another process has it, or it ended meanwhile
        data: dict[str, Any] = claimed["data"]
        if claimed["attempts"] > INGEST_MAX_ATTEMPTS:
            message = f"Ingestion was interrupted {INGEST_MAX_ATTEMPTS} times; giving up."
            await self._finish(data, "server_error", message, None)
            return
        renewing = asyncio.create_task(self._renew(data))
        try:
            text = await self._ingest(item.project_id, data)
        except FileRejected as exc:
            await self._finish(data, exc.code, exc.message, None)
        except Exception as exc:
            log.exception("ingestion of %s into %s failed", data["id"], data["vector_store_id"])
            await self._finish(data, "server_error", f"The file could not be processed: {exc}")
        else:
            await self._finish(data, None, None, text)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, data: dict[str, Any]) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            async with self.db.write() as conn:
                held = await store.renew(
                    conn,
                    data["vector_store_id"],
                    data["id"],
                    self.owner,
                    self.clock.time() + self.lease_seconds,
                )
            if not held:
                return

    async def _ingest(self, project: str, data: dict[str, Any]) -> str:
        store_id, file_id = data["vector_store_id"], data["id"]
        async with self.db.read() as conn:
            file = await objects.files.find(conn, project, file_id)
        if file is None:
            raise FileRejected("invalid_file", f"The file {file_id} no longer exists.")
        try:
            reader = await self.blobs.open(file_id)
        except BlobMissingError:
            raise FileRejected("invalid_file", f"The file {file_id} has no content.") from None
        try:
            content = b"".join([part async for part in reader.chunks()])
        finally:
            await reader.aclose()
        text = await self.pipeline.parse(content, file["filename"])
        sizes = data["chunking_strategy"]["static"]
        chunks = await self.pipeline.chunk(
            text, sizes["max_chunk_size_tokens"], sizes["chunk_overlap_tokens"]
        )
        if len(chunks) >= LARGE_FILE_CHUNKS:
            log.info("%s (%s): %d chunks to embed", file_id, file["filename"], len(chunks))
        embeddings = await self.pipeline.embed(chunks)
        await self.pipeline.index(
            store_id, file_id, file["filename"], chunks, embeddings, data.get("attributes") or {}
        )
        if len(chunks) >= LARGE_FILE_CHUNKS:
            log.info("%s (%s): %d chunks indexed", file_id, file["filename"], len(chunks))
        return text

    async def _finish(
        self,
        data: dict[str, Any],
        code: FailureCode | None,
        message: str | None,
        text: str | None = None,
    ) -> None:
        if code is None:
            data.update(status="completed", last_error=None)
            data["usage_bytes"] = len((text or "").encode("utf-8"))
        else:
            data.update(status="failed", last_error={"code": code, "message": message})
        async with self.db.write() as conn:
            recorded = await store.finish(conn, data, self.owner, text)
            status = await store.file_status(conn, data["vector_store_id"], data["id"])
        if (recorded and code is not None) or (not recorded and status in (None, "cancelled")):
            # Failed, or cancelled or removed while it was being ingested: drop
            # whatever was indexed. (Added again meanwhile, the file is another
            # ingestion's, whose ``index`` replaces what this one left.)
            await self.pipeline.delete_file(data["vector_store_id"], data["id"])
        elif not recorded:
            log.info("%s in %s changed while it was ingested", data["id"], data["vector_store_id"])
