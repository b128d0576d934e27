"""Uploads (a file sent in parts) and their parts: requests and wire objects."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from threadline.schemas.common import INTEGRAL, Request, WireObject
from threadline.schemas.file import FileExpiresAfter, FileObject

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision"]


class CreateUploadRequest(Request):
    filename: Annotated[str, Field(min_length=1)]
    purpose: UploadPurpose
    bytes: Annotated[int, Field(ge=0), INTEGRAL]
    mime_type: Annotated[str, Field(min_length=1)]
    expires_after: FileExpiresAfter | None = None


class CompleteUploadRequest(Request):
    part_ids: list[str]
    md5: str | None = None


class UploadObject(WireObject):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: UploadStatus
    file: FileObject | None = None


class UploadPartObject(WireObject):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str
