"""The File object."""

from __future__ import annotations

from typing import Literal

from threadline.schemas.common import WireObject

UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
UPLOAD_PURPOSES: tuple[str, ...] = UploadPurpose.__args__  # type: ignore[attr-defined]


class FileObject(WireObject):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None
