"""Vector store ingestion as a library, on each engine: the worker, its leases and
attempts, its outcomes, over a migrated database, a stand-in pipeline and a clock
the test moves. The guarantee: no file stays ``in_progress`` forever."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from threadline.services.ingestion import Attributes, FileRejected, Hit, IngestionWorker
from threadline.services.inline_stores import new_file
from threadline.storage import objects, tables
from threadline.storage import vector_stores as store
from threadline.storage.blobs import BlobStore, LocalBlobStore
from threadline.storage.db import Database

PROJECT = "proj_ingest"
LEASE = 30.0


class ManualClock:
    def __init__(self) -> None:
        self.at = time.time()

    def time(self) -> float:
        return self.at


class StandInPipeline:
    """Words as chunks, no vectors; remembers what was indexed and removed."""

    def __init__(self) -> None:
        self.indexed: dict[tuple[str, str], list[str]] = {}
        self.removed: list[tuple[str, str]] = []

    async def parse(self, data: bytes, filename: str) -> str:
        if filename.endswith(".exe"):
            raise FileRejected("unsupported_file", "no executables")
        if filename.endswith(".boom"):
            raise RuntimeError("the parser crashed")
        return data.decode()

    async def chunk(self, text: str, max_tokens: int, overlap_tokens: int) -> list[str]:
        return text.split()

    async def embed(self, texts: Sequence[str]) -> Any:
        return [None for _ in texts]

    async def index(
        self,
        vector_store_id: str,
        file_id: str,
        filename: str,
        chunks: Sequence[str],
        embeddings: Any,
        attributes: Attributes,
    ) -> None:
        self.indexed[(vector_store_id, file_id)] = list(chunks)

    async def delete_file(self, vector_store_id: str, file_id: str) -> None:
        self.removed.append((vector_store_id, file_id))
        self.indexed.pop((vector_store_id, file_id), None)

    async def delete_store(self, vector_store_id: str) -> None:
        pass

    async def set_attributes(
        self, vector_store_id: str, file_id: str, attributes: Attributes
    ) -> None:
        pass

    async def search(
        self,
        vector_store_ids: Sequence[str],
        query: str,
        *,
        max_results: int,
        filters: Mapping[str, Any] | None,
        score_threshold: float,
        ranker: str,
    ) -> list[Hit]:
        return []


async def _store_with_file(
    db: Database, blobs: BlobStore, filename: str, content: bytes, **lease: Any
) -> tuple[str, str]:
    """A store holding one ``in_progress`` file; ``lease`` sets its lease columns."""
    file_id = f"file-{filename.replace('.', '')}"
    store_id = f"vs_{filename.replace('.', '')}"
    await blobs.put(file_id, io.BytesIO(content), 1 << 20)
    now = int(time.time())
    async with db.write() as conn:
        file = {"id": file_id, "object": "file", "bytes": len(content), "created_at": now}
        await objects.files.insert(
            conn, PROJECT, {**file, "filename": filename}, purpose="assistants"
        )
        data = {"id": store_id, "object": "vector_store", "created_at": now, "expires_at": None}
        await store.insert_store(conn, PROJECT, data)
        sizes = {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}
        chunking = {"type": "static", "static": sizes}
        await store.insert_file(
            conn, PROJECT, new_file(file_id, store_id, now, chunking, None), None
        )
        if lease:
            F = tables.vector_store_files.c
            await conn.execute(
                tables.vector_store_files.update().where(F.id == file_id).values(**lease)
            )
    return store_id, file_id


async def _row(db: Database, file_id: str) -> Any:
    F = tables.vector_store_files.c
    async with db.read() as conn:
        query = sa.select(F.status, F.attempts, F.lease_owner, F.content, F.data)
        return (await conn.execute(query.where(F.id == file_id))).one()


def _worker(
    db: Database, tmp_path: Path, pipeline: StandInPipeline, clock: ManualClock
) -> IngestionWorker:
    return IngestionWorker(
        db,
        LocalBlobStore(tmp_path / "files"),
        pipeline,
        concurrency=2,
        lease_seconds=LEASE,
        sweep_interval=60,
        clock=clock,
    )


async def test_waiting_file_is_ingested_and_counted(db: Database, tmp_path: Path) -> None:
    pipeline, clock = StandInPipeline(), ManualClock()
    worker = _worker(db, tmp_path, pipeline, clock)
    store_id, file_id = await _store_with_file(db, worker.blobs, "a.txt", b"alpha beta gamma")
    await worker.idle()
    row = await _row(db, file_id)
    assert (row.status, row.attempts, row.lease_owner) == ("completed", 1, None)
    assert row.content == "alpha beta gamma"
    assert row.data["status"] == "completed"
    assert row.data["usage_bytes"] == len("alpha beta gamma")
    assert pipeline.indexed[(store_id, file_id)] == ["alpha", "beta", "gamma"]
    async with db.read() as conn:
        counts = await store.counts(conn, store.F.vector_store_id, [store_id])
    assert counts[store_id].wire() == {
        "in_progress": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "total": 1,
    }
    assert counts[store_id].usage_bytes == len("alpha beta gamma")


async def test_rejected_and_crashing_files_fail_with_their_codes(
    db: Database, tmp_path: Path
) -> None:
    pipeline, clock = StandInPipeline(), ManualClock()
    worker = _worker(db, tmp_path, pipeline, clock)
    blobs = worker.blobs
    _, exe = await _store_with_file(db, blobs, "x.exe", b"MZ")
    boom_store, boom = await _store_with_file(db, blobs, "y.boom", b"?")
    await worker.idle()
    exe_row, boom_row = await _row(db, exe), await _row(db, boom)
    assert exe_row.status == "failed"
    assert exe_row.data["last_error"] == {"code": "unsupported_file", "message": "no executables"}
    assert boom_row.status == "failed"
    assert boom_row.data["last_error"]["code"] == "server_error"
    assert "the parser crashed" in boom_row.data["last_error"]["message"]
    assert (boom_store, boom) in pipeline.removed  # whatever it indexed is dropped


async def test_lapsed_lease_of_a_dead_process_is_taken_up_again(
    db: Database, tmp_path: Path
) -> None:
    pipeline, clock = StandInPipeline(), ManualClock()
    worker = _worker(db, tmp_path, pipeline, clock)
    _, file_id = await _store_with_file(
        db,
        worker.blobs,
        "resume.txt",
        b"still here",
        lease_owner="ing_dead",
        lease_expires_at=clock.time() - 1,
        attempts=1,
    )
    await worker.idle()
    row = await _row(db, file_id)
    assert (row.status, row.attempts) == ("completed", 2)


async def test_a_held_lease_is_left_alone_until_it_lapses(db: Database, tmp_path: Path) -> None:
    pipeline, clock = StandInPipeline(), ManualClock()
    worker = _worker(db, tmp_path, pipeline, clock)
    _, file_id = await _store_with_file(
        db,
        worker.blobs,
        "held.txt",
        b"busy elsewhere",
        lease_owner="ing_other",
        lease_expires_at=clock.time() + LEASE,
        attempts=1,
    )
    assert await worker.sweep() == 0
    row = await _row(db, file_id)
    assert (row.status, row.lease_owner) == ("in_progress", "ing_other")
    clock.at += LEASE + 1
    await worker.idle()
    assert (await _row(db, file_id)).status == "completed"


async def test_third_interrupted_attempt_fails_the_file(db: Database, tmp_path: Path) -> None:
    pipeline, clock = StandInPipeline(), ManualClock()
    worker = _worker(db, tmp_path, pipeline, clock)
    store_id, file_id = await _store_with_file(
        db,
        worker.blobs,
        "cursed.txt",
        b"never finishes",
        lease_owner="ing_dead",
        lease_expires_at=clock.time() - 1,
        attempts=3,
    )
    await worker.idle()
    row = await _row(db, file_id)
    assert row.status == "failed"
    assert row.data["last_error"]["code"] == "server_error"
    assert (store_id, file_id) not in pipeline.indexed


async def test_cancelled_meanwhile_keeps_cancelled_and_drops_the_index(
    db: Database, tmp_path: Path
) -> None:
    pipeline, clock = StandInPipeline(), ManualClock()
    worker = _worker(db, tmp_path, pipeline, clock)
    store_id, file_id = await _store_with_file(db, worker.blobs, "c.txt", b"words")
    async with db.write() as conn:
        claimed = await store.claim(
            conn,
            store_id,
            file_id,
            owner=worker.owner,
            until=clock.time() + LEASE,
            now=clock.time(),
        )
        assert claimed is not None
        data = claimed["data"]
        assert await store.save_file(conn, {**data, "status": "cancelled"}, seen="in_progress")
    await worker._finish(data, None, None, "words")
    row = await _row(db, file_id)
    assert row.status == "cancelled"
    assert (store_id, file_id) in pipeline.removed


class BlockingPipeline(StandInPipeline):
    """Parses nothing until the test is done: it stands for a long ingestion."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def parse(self, data: bytes, filename: str) -> str:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_stopping_hands_back_the_lease_for_the_next_process(
    db: Database, tmp_path: Path
) -> None:
    clock = ManualClock()
    blocking = BlockingPipeline()
    first = _worker(db, tmp_path, blocking, clock)
    _, file_id = await _store_with_file(db, first.blobs, "long.txt", b"long text")
    await first.start()
    await asyncio.wait_for(blocking.entered.wait(), 10)
    held = await _row(db, file_id)
    assert (held.status, held.lease_owner, held.attempts) == ("in_progress", first.owner, 1)
    await first.stop()
    released = await _row(db, file_id)
    assert (released.status, released.lease_owner) == ("in_progress", None)

    second = _worker(db, tmp_path, StandInPipeline(), clock)
    await second.idle()
    done = await _row(db, file_id)
    assert (done.status, done.attempts) == ("completed", 2)


async def test_added_again_meanwhile_keeps_the_newer_ingestion_indexed(
    db: Database, tmp_path: Path
) -> None:
    pipeline, clock = StandInPipeline(), ManualClock()
    worker = _worker(db, tmp_path, pipeline, clock)
    store_id, file_id = await _store_with_file(db, worker.blobs, "again.txt", b"old words")
    async with db.write() as conn:
        claimed = await store.claim(
            conn, store_id, file_id, owner="ing_old", until=clock.time() + LEASE, now=clock.time()
        )
        assert claimed is not None
        # Added again: the row is new, waiting, and the old attempt's lease is gone.
        await store.delete_file(conn, PROJECT, store_id, file_id)
        await store.insert_file(conn, PROJECT, claimed["data"], None)
    await worker.idle()
    assert pipeline.indexed[(store_id, file_id)] == ["old", "words"]
    stale = IngestionWorker(
        db, worker.blobs, pipeline, concurrency=1, lease_seconds=LEASE, sweep_interval=60
    )
    stale.owner = "ing_old"
    await stale._finish(claimed["data"], None, None, "old words")
    assert (store_id, file_id) in pipeline.indexed  # the newer ingestion's chunks stay
    assert (await _row(db, file_id)).status == "completed"
