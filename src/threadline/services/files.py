"""Files: upload, retrieve, list, delete, download. Bytes go to a ``BlobStore``;
the row is written only after the bytes are safely stored, and a failed insert
removes them again. A file given ``expires_after`` carries ``expires_at`` and is
deleted, row and bytes, once past it (``services.expiry``)."""

from __future__ import annotations

from typing import Any, BinaryIO

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.domain.pages import Page, PageParams
from threadline.errors import InvalidRequestError, NotFoundError
from threadline.schemas.file import UPLOAD_PURPOSES
from threadline.storage import objects
from threadline.storage.blobs import BlobMissingError, BlobStore
from threadline.storage.blobs import BlobReader as BlobReader
from threadline.storage.db import Database

repo = objects.files
MAX_FILENAME_CHARS = 512


def clean_filename(filename: str, param: str = "file") -> str:
    """The name a file is shown with: its last path segment, without NULs."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "").strip()
    name = name or "upload"
    if len(name) > MAX_FILENAME_CHARS:
        raise InvalidRequestError(
            f"The file name may be at most {MAX_FILENAME_CHARS} characters.",
            param=param,
            code="invalid_value",
        )
    return name


def file_data(
    file_id: str, filename: str, purpose: str, size: int, expires_after: int | None
) -> dict[str, Any]:
    """A new File's wire form (``expires_after``: seconds after its creation)."""
    created = now()
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created,
        "expires_at": None if expires_after is None else created + expires_after,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }


class FileService:
    def __init__(self, db: Database, blobs: BlobStore, max_bytes: int) -> None:
        self.db = db
        self.blobs = blobs
        self.max_bytes = max_bytes

    async def upload(
        self,
        project: str,
        filename: str,
        purpose: str,
        source: BinaryIO,
        expires_after: int | None = None,
    ) -> dict[str, Any]:
        if purpose not in UPLOAD_PURPOSES:
            raise InvalidRequestError(
                f"Invalid value: '{purpose}'. Supported values are: "
                + ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES[:-1])
                + f", and '{UPLOAD_PURPOSES[-1]}'.",
                param="purpose",
                code="invalid_value",
            )
        name = clean_filename(filename)
        file_id = new_id("file")
        size = await self.blobs.put(file_id, source, self.max_bytes)
        data = file_data(file_id, name, purpose, size, expires_after)
        try:
            async with self.db.write() as conn:
                await repo.insert(
                    conn, project, data, purpose=purpose, expires_at=data["expires_at"]
                )
        except BaseException:
            await self.blobs.delete(file_id)
            raise
        return data

    async def retrieve(self, project: str, file_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            return await repo.get(conn, project, file_id)

    async def list(self, project: str, params: PageParams, purpose: str | None) -> Page:
        scope: dict[str, Any] = {"purpose": purpose} if purpose else {}
        async with self.db.read() as conn:
            return await repo.page(conn, project, params, **scope)

    async def delete(self, project: str, file_id: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            await repo.delete(conn, project, file_id)
        await self.blobs.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    async def content(self, project: str, file_id: str) -> tuple[dict[str, Any], BlobReader]:
        """The file and its bytes, opened: a delete that comes while they are sent
        does not cut them short. The caller closes the reader."""
        data = await self.retrieve(project, file_id)
        try:
            return data, await self.blobs.open(file_id)
        except BlobMissingError:  # deleted since the row was read
            raise NotFoundError.for_object("file", file_id) from None
