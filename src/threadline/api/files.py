"""/v1/files"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse

from threadline.api.deps import ProjectDep, ServicesDep
from threadline.domain.pages import PageParams
from threadline.schemas.common import DeletionStatus, ListResponse
from threadline.schemas.file import FileObject

router = APIRouter(prefix="/files", tags=["Files"])

FILES_LIMIT_MAX = 10_000


@router.post("", response_model=FileObject)
async def upload_file(
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
    project: ProjectDep,
    services: ServicesDep,
) -> Any:
    return await services.files.upload(project, file.filename or "upload", purpose, file.file)


@router.get("", response_model=ListResponse[FileObject])
async def list_files(
    project: ProjectDep,
    services: ServicesDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=FILES_LIMIT_MAX)] = FILES_LIMIT_MAX,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Any:
    params = PageParams(limit=limit, order=order, after=after)
    return (await services.files.list(project, params, purpose)).envelope()


@router.get("/{file_id}", response_model=FileObject)
async def get_file(file_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.files.retrieve(project, file_id)


@router.delete("/{file_id}", response_model=DeletionStatus)
async def delete_file(file_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.files.delete(project, file_id)


@router.get("/{file_id}/content", response_class=StreamingResponse)
async def download_file(file_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    data, chunks = await services.files.content(project, file_id)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(data["bytes"]),
            "Content-Disposition": f'attachment; filename="{data["id"]}"',
        },
    )
