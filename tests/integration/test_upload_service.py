"""The upload service as a library, on each engine: what completing leaves behind
when it cannot finish (the upload ended while its parts were being joined, a join
that fails part way), and the expiry sweep finishing what a stopped process left."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from threadline.errors import InvalidRequestError
from threadline.schemas.upload import CompleteUploadRequest, CreateUploadRequest
from threadline.services.expiry import ExpirySweeper
from threadline.services.files import FileService
from threadline.services.uploads import UploadService
from threadline.storage import tables
from threadline.storage.blobs import Joined, LocalBlobStore
from threadline.storage.db import Database

PROJECT = "proj_up"


class InterruptedJoin(LocalBlobStore):
    """Joins as the local store does, but runs ``meanwhile`` first (another request
    that comes while the parts are joined) or fails after writing (a crash)."""

    meanwhile: object = None
    fail: bool = False

    async def join(self, key: str, sources: Sequence[str]) -> Joined:
        if self.meanwhile is not None:
            await self.meanwhile  # type: ignore[misc]
        joined = await super().join(key, sources)
        if self.fail:
            raise OSError("disk gone")
        return joined


async def _rows(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def _upload(service: UploadService, content: bytes) -> tuple[str, list[str]]:
    upload = await service.create(
        PROJECT,
        CreateUploadRequest(
            filename="a.txt", purpose="assistants", bytes=len(content), mime_type="text/plain"
        ),
    )
    part = await service.add_part(PROJECT, upload["id"], io.BytesIO(content))
    return upload["id"], [part["id"]]


def _blobs(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_an_upload_cancelled_while_joined_leaves_no_file(
    db: Database, tmp_path: Path
) -> None:
    blobs = InterruptedJoin(tmp_path / "blobs")
    service = UploadService(db, blobs, 10_000)
    upload_id, part_ids = await _upload(service, b"hello")
    blobs.meanwhile = service.cancel(PROJECT, upload_id)

    with pytest.raises(InvalidRequestError) as refused:
        await service.complete(PROJECT, upload_id, CompleteUploadRequest(part_ids=part_ids))
    assert "cancelled" in refused.value.message
    assert await _rows(db, tables.files) == 0
    assert await _rows(db, tables.upload_parts) == 0
    assert _blobs(tmp_path / "blobs") == []


async def test_a_failed_join_leaves_the_upload_pending_and_no_file(
    db: Database, tmp_path: Path
) -> None:
    blobs = InterruptedJoin(tmp_path / "blobs")
    service = UploadService(db, blobs, 10_000)
    upload_id, part_ids = await _upload(service, b"hello")
    blobs.fail = True

    with pytest.raises(OSError, match="disk gone"):
        await service.complete(PROJECT, upload_id, CompleteUploadRequest(part_ids=part_ids))
    assert await _rows(db, tables.files) == 0
    assert _blobs(tmp_path / "blobs") == part_ids
    blobs.fail = False
    done = await service.complete(PROJECT, upload_id, CompleteUploadRequest(part_ids=part_ids))
    assert done["status"] == "completed"
    assert _blobs(tmp_path / "blobs") == [done["file"]["id"]]
    assert (
        tmp_path / "blobs" / done["file"]["id"][-2:] / done["file"]["id"]
    ).read_bytes() == b"hello"


async def test_the_sweep_removes_parts_a_stopped_process_left(db: Database, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    service = UploadService(db, blobs, 10_000)
    sweeper = ExpirySweeper(db, FileService(db, blobs, 10_000), service)
    upload_id, part_ids = await _upload(service, b"left")
    # A process that marked the upload cancelled and stopped before removing parts.
    async with db.write() as conn:
        await conn.execute(
            sa.update(tables.uploads)
            .where(tables.uploads.c.id == upload_id)
            .values(status="cancelled")
        )
    assert _blobs(tmp_path / "blobs") == part_ids

    await sweeper.sweep()
    assert await _rows(db, tables.upload_parts) == 0
    assert _blobs(tmp_path / "blobs") == []


class FailingDelete(LocalBlobStore):
    """Deletes fail while ``down`` (an object store that is unreachable)."""

    down: bool = False

    async def delete(self, key: str) -> None:
        if self.down:
            raise OSError("object store unreachable")
        await super().delete(key)


async def test_parts_that_cannot_be_removed_do_not_fail_a_completed_upload(
    db: Database, tmp_path: Path
) -> None:
    blobs = FailingDelete(tmp_path / "blobs")
    service = UploadService(db, blobs, 10_000)
    upload_id, part_ids = await _upload(service, b"hello")
    blobs.down = True

    done = await service.complete(PROJECT, upload_id, CompleteUploadRequest(part_ids=part_ids))
    assert done["status"] == "completed"
    assert await _rows(db, tables.files) == 1
    assert await _rows(db, tables.upload_parts) == 1  # left for the sweep

    blobs.down = False
    await ExpirySweeper(db, FileService(db, blobs, 10_000), service).sweep()
    assert await _rows(db, tables.upload_parts) == 0
    assert _blobs(tmp_path / "blobs") == [done["file"]["id"]]


async def test_parts_that_cannot_be_removed_do_not_fail_a_cancel(
    db: Database, tmp_path: Path
) -> None:
    blobs = FailingDelete(tmp_path / "blobs")
    service = UploadService(db, blobs, 10_000)
    upload_id, _ = await _upload(service, b"hello")
    blobs.down = True

    cancelled = await service.cancel(PROJECT, upload_id)
    assert cancelled["status"] == "cancelled"
    assert await _rows(db, tables.upload_parts) == 1  # left for the sweep
