"""Uploads: a file sent in parts of up to 64 MB, then completed into a File.

Each part's bytes are stored (durably, through the ``BlobStore``) under the
part's id before its row is written. Completing joins the parts, in the order
given, into the File's blob, streamed and written whole or not at all; then one
transaction writes the File's row and marks the upload ``completed``, so a
process killed part way leaves the upload pending and no File. The parts' bytes
are removed once the upload has ended (completed, cancelled or expired); what a
killed process left of them the expiry sweep removes."""

from __future__ import annotations

import logging
from typing import Any, BinaryIO

from threadline.domain import limits
from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.errors import InvalidRequestError
from threadline.schemas.upload import CompleteUploadRequest, CreateUploadRequest
from threadline.services.files import clean_filename, file_data
from threadline.storage import objects
from threadline.storage import uploads as store
from threadline.storage.blobs import BlobMissingError, BlobStore
from threadline.storage.db import Database

log = logging.getLogger("threadline.uploads")
PRIVATE = ("file_expires_after", "mime_type")
"""Kept in an upload's row, not shown."""


def shown(data: dict[str, Any]) -> dict[str, Any]:
    """The upload as the API shows it (``expired`` once past ``expires_at``)."""
    wire = {key: value for key, value in data.items() if key not in PRIVATE}
    if wire["status"] == "pending" and wire["expires_at"] <= now():
        wire["status"] = "expired"
    return wire


class UploadService:
    def __init__(self, db: Database, blobs: BlobStore, max_bytes: int) -> None:
        self.db = db
        self.blobs = blobs
        self.max_bytes = max_bytes

    async def create(self, project: str, body: CreateUploadRequest) -> dict[str, Any]:
        if body.bytes > self.max_bytes:
            raise InvalidRequestError(
                f"Invalid 'bytes': an upload may be at most {self.max_bytes} bytes, "
                f"got {body.bytes}.",
                param="bytes",
                code="invalid_value",
            )
        created = now()
        data: dict[str, Any] = {
            "id": new_id("upload"),
            "object": "upload",
            "bytes": body.bytes,
            "created_at": created,
            "expires_at": created + limits.UPLOAD_EXPIRES_SECONDS,
            "filename": clean_filename(body.filename, "filename"),
            "purpose": body.purpose,
            "status": "pending",
            "file": None,
            "mime_type": body.mime_type,
            "file_expires_after": body.expires_after.seconds if body.expires_after else None,
        }
        async with self.db.write() as conn:
            await store.insert_upload(conn, project, data)
        return shown(data)

    async def add_part(self, project: str, upload_id: str, source: BinaryIO) -> dict[str, Any]:
        async with self.db.read() as conn:
            _pending(await store.uploads.get(conn, project, upload_id), "add parts to")
        part_id = new_id("upload_part")
        size = await self.blobs.put(part_id, source, limits.UPLOAD_PART_MAX_BYTES)
        part = {
            "id": part_id,
            "object": "upload.part",
            "created_at": now(),
            "upload_id": upload_id,
        }
        try:
            async with self.db.write() as conn:
                # Ended meanwhile: refused, and the bytes go.
                _pending(await store.uploads.get(conn, project, upload_id), "add parts to")
                await store.insert_part(conn, project, part, size)
        except BaseException:
            await self.blobs.delete(part_id)
            raise
        return part

    async def complete(
        self, project: str, upload_id: str, body: CompleteUploadRequest
    ) -> dict[str, Any]:
        async with self.db.read() as conn:
            upload = _pending(await store.uploads.get(conn, project, upload_id), "complete")
            stored = await store.parts_of(conn, upload_id)
        _check_parts(upload, body.part_ids, stored)
        file_id = new_id("file")
        try:
            try:
                joined = await self.blobs.join(file_id, body.part_ids)
            except BlobMissingError as missing:  # the upload ended meanwhile
                async with self.db.read() as conn:
                    _pending(await store.uploads.get(conn, project, upload_id), "complete")
                raise _ended(upload_id, "complete") from missing
            if joined.size != upload["bytes"]:  # parts are never changed; defensive
                raise _size_mismatch(upload["bytes"], joined.size)
            if body.md5 is not None and body.md5.strip().lower() != joined.md5:
                raise InvalidRequestError(
                    f"The md5 checksum '{body.md5}' does not match the uploaded bytes "
                    f"(md5 '{joined.md5}').",
                    param="md5",
                    code="invalid_value",
                )
            file = file_data(
                file_id,
                upload["filename"],
                upload["purpose"],
                joined.size,
                upload.get("file_expires_after"),
            )
            async with self.db.write() as conn:
                upload = _pending(await store.uploads.get(conn, project, upload_id), "complete")
                await objects.files.insert(
                    conn, project, file, purpose=file["purpose"], expires_at=file["expires_at"]
                )
                upload = {**upload, "status": "completed", "file": file}
                await store.save_upload(conn, project, upload)
        except BaseException:
            await self.blobs.delete(file_id)
            raise
        await self._discard_after_end(upload_id, list(stored))
        return shown(upload)

    async def cancel(self, project: str, upload_id: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            upload = _pending(await store.uploads.get(conn, project, upload_id), "cancel")
            upload = {**upload, "status": "cancelled"}
            await store.save_upload(conn, project, upload)
            stored = await store.parts_of(conn, upload_id)
        await self._discard_after_end(upload_id, list(stored))
        return shown(upload)

    async def expire(self, project: str, upload_id: str) -> None:
        """Mark a pending upload past its ``expires_at`` ``expired`` and remove its
        parts (the expiry sweep)."""
        async with self.db.write() as conn:
            upload = await store.uploads.find(conn, project, upload_id)
            if upload is None or upload["status"] != "pending" or upload["expires_at"] > now():
                return
            await store.save_upload(conn, project, {**upload, "status": "expired"})
            stored = await store.parts_of(conn, upload_id)
        await self.discard_parts(list(stored))

    async def _discard_after_end(self, upload_id: str, part_ids: list[str]) -> None:
        """Remove an ended upload's parts; the upload has ended whatever happens here
        (its File is stored), so a blob store that fails now leaves the parts to the
        expiry sweep instead of failing the request."""
        try:
            await self.discard_parts(part_ids)
        except Exception:
            log.warning(
                "upload %s ended; its %d parts are left for the expiry sweep",
                upload_id,
                len(part_ids),
                exc_info=True,
            )

    async def discard_parts(self, part_ids: list[str]) -> None:
        """Remove the parts' bytes, then their rows (a process killed between the
        two leaves rows that the expiry sweep finishes)."""
        for part_id in part_ids:
            await self.blobs.delete(part_id)
        async with self.db.write() as conn:
            await store.delete_parts(conn, part_ids)


def _ended(upload_id: str, action: str, status: str = "no longer pending") -> InvalidRequestError:
    return InvalidRequestError(
        f"Cannot {action} upload '{upload_id}': it is {status}.",
        param="upload_id",
        code="invalid_upload_status",
    )


def _pending(upload: dict[str, Any], action: str) -> dict[str, Any]:
    status = shown(upload)["status"]
    if status != "pending":
        raise _ended(upload["id"], action, f"already {status}")
    return upload


def _size_mismatch(expected: int, got: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"The parts hold {got} bytes, but the upload was created with 'bytes' = {expected}.",
        param="part_ids",
        code="invalid_value",
    )


def _check_parts(
    upload: dict[str, Any], part_ids: list[str], stored: dict[str, store.Part]
) -> None:
    seen: set[str] = set()
    for index, part_id in enumerate(part_ids):
        if part_id not in stored:
            raise InvalidRequestError(
                f"Invalid 'part_ids[{index}]': no part '{part_id}' in upload '{upload['id']}'.",
                param=f"part_ids[{index}]",
                code="invalid_value",
            )
        if part_id in seen:
            raise InvalidRequestError(
                f"Invalid 'part_ids[{index}]': part '{part_id}' is listed twice.",
                param=f"part_ids[{index}]",
                code="invalid_value",
            )
        seen.add(part_id)
    total = sum(stored[part_id].bytes for part_id in part_ids)
    if total != upload["bytes"]:
        raise _size_mismatch(upload["bytes"], total)
