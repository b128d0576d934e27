"""The File object, and the expiration policy a file may be given."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from threadline.domain import limits
from threadline.schemas.common import INTEGRAL, Request, WireObject

UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
UPLOAD_PURPOSES: tuple[str, ...] = UploadPurpose.__args__  # type: ignore[attr-defined]


class FileExpiresAfter(Request):
    """The spec's ``FileExpirationAfter``: the file goes ``seconds`` after its creation."""

    anchor: Literal["created_at"]
    seconds: Annotated[
        int,
        Field(ge=limits.FILE_EXPIRY_SECONDS_MIN, le=limits.FILE_EXPIRY_SECONDS_MAX),
        INTEGRAL,
    ]


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
