"""/v1/uploads: a file sent in parts, then completed into a File (or cancelled)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from threadline.api.deps import ProjectDep, ServicesDep
from threadline.api.requests import JSONRoute
from threadline.schemas.upload import (
    CompleteUploadRequest,
    CreateUploadRequest,
    UploadObject,
    UploadPartObject,
)

router = APIRouter(prefix="/uploads", tags=["Uploads"], route_class=JSONRoute)
parts = APIRouter(prefix="/uploads", tags=["Uploads"])
"""The parts' route takes multipart bodies, not JSON."""


@router.post("", response_model=UploadObject)
async def create_upload(
    body: CreateUploadRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.uploads.create(project, body)


@parts.post("/{upload_id}/parts", response_model=UploadPartObject)
async def add_upload_part(
    upload_id: str,
    data: Annotated[UploadFile, File()],
    project: ProjectDep,
    services: ServicesDep,
) -> Any:
    return await services.uploads.add_part(project, upload_id, data.file)


@router.post("/{upload_id}/complete", response_model=UploadObject)
async def complete_upload(
    upload_id: str, body: CompleteUploadRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.uploads.complete(project, upload_id, body)


@router.post("/{upload_id}/cancel", response_model=UploadObject)
async def cancel_upload(upload_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.uploads.cancel(project, upload_id)
