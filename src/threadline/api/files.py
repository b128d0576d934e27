"""/v1/files"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from threadline.api.deps import ProjectDep, ServicesDep
from threadline.domain import limits
from threadline.domain.pages import PageParams
from threadline.errors import InvalidRequestError
from threadline.schemas.common import DeletionStatus, ListResponse
from threadline.schemas.file import UPLOAD_PURPOSES, FileObject
from threadline.services.files import BlobReader

router = APIRouter(prefix="/files", tags=["Files"])

# `expires_after` in a form is two fields, read as text and checked by
# `expires_after_seconds`; the document says what they must hold.
ANCHOR: dict[str, Any] = {"type": "string", "enum": ["created_at"]}
SECONDS: dict[str, Any] = {
    "type": "integer",
    "minimum": limits.FILE_EXPIRY_SECONDS_MIN,
    "maximum": limits.FILE_EXPIRY_SECONDS_MAX,
}


def _documented(schema: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def replace(generated: dict[str, Any]) -> None:
        title = generated.get("title")
        generated.clear()
        generated.update(schema, **({"title": title} if title else {}))

    return replace


FILES_LIMIT_MAX = 10_000


class BlobResponse(Response):
    """Sends an opened blob whole (as promised by ``Content-Length``) and closes it,
    also when the client goes away part way."""

    media_type = "application/octet-stream"

    def __init__(self, reader: BlobReader, name: str, status_code: int = 200) -> None:
        super().__init__(
            status_code=status_code,
            headers={
                "Content-Length": str(reader.size),
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )
        self.reader = reader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self.reader.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.reader.aclose()


@router.post("", response_model=FileObject)
async def upload_file(
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form(json_schema_extra={"enum": list(UPLOAD_PURPOSES)})],
    project: ProjectDep,
    services: ServicesDep,
    anchor: Annotated[
        str | None,
        Form(alias="expires_after[anchor]", json_schema_extra=_documented(ANCHOR)),
    ] = None,
    seconds: Annotated[
        str | None,
        Form(alias="expires_after[seconds]", json_schema_extra=_documented(SECONDS)),
    ] = None,
) -> Any:
    return await services.files.upload(
        project,
        file.filename or "upload",
        purpose,
        file.file,
        expires_after_seconds(anchor, seconds),
    )


def expires_after_seconds(anchor: str | None, seconds: str | None) -> int | None:
    """``expires_after`` as a form sends it (``expires_after[anchor]``,
    ``expires_after[seconds]``): the seconds after creation, or ``None``. The
    object needs both."""
    if anchor is None and seconds is None:
        return None
    missing = "anchor" if anchor is None else "seconds" if seconds is None else None
    if missing is not None:
        raise InvalidRequestError(
            f"Missing required parameter: 'expires_after.{missing}'.",
            param=f"expires_after.{missing}",
            code="missing_required_parameter",
        )
    if anchor != "created_at":
        raise InvalidRequestError(
            f"Invalid 'expires_after.anchor': expected 'created_at', got {anchor!r}.",
            param="expires_after.anchor",
            code="invalid_value",
        )
    low, high = limits.FILE_EXPIRY_SECONDS_MIN, limits.FILE_EXPIRY_SECONDS_MAX
    text = (seconds or "").strip()
    # ASCII digits only: str.isdigit() also holds for "³" (int() refuses it) and
    # for other scripts' digits (int() reads them).
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise InvalidRequestError(
            f"Invalid 'expires_after.seconds': expected an integer from {low} to {high}, "
            f"got {seconds!r}.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return int(text)


@router.get("", response_model=ListResponse[FileObject])
async def list_files(
    project: ProjectDep,
    services: ServicesDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=FILES_LIMIT_MAX)] = FILES_LIMIT_MAX,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Any:
    params = PageParams(limit=limit, order=order, after=after or None)
    return (await services.files.list(project, params, purpose)).envelope()


@router.get("/{file_id}", response_model=FileObject)
async def get_file(file_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.files.retrieve(project, file_id)


@router.delete("/{file_id}", response_model=DeletionStatus)
async def delete_file(file_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.files.delete(project, file_id)


@router.get("/{file_id}/content", response_class=BlobResponse)
async def download_file(file_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    data, reader = await services.files.content(project, file_id)
    return BlobResponse(reader, data["id"])
