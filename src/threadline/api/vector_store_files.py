"""/v1/vector_stores/{id}/files and /file_batches."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from threadline.api.deps import PageDep, ProjectDep, ServicesDep
from threadline.api.requests import JSONRoute
from threadline.schemas.common import DeletionStatus, ListResponse
from threadline.schemas.vector_store import (
    CreateFileBatchRequest,
    CreateVectorStoreFileRequest,
    FileContentPage,
    UpdateVectorStoreFileRequest,
    VectorStoreFile,
    VectorStoreFileBatch,
)

router = APIRouter(
    prefix="/vector_stores/{vector_store_id}", tags=["Vector stores"], route_class=JSONRoute
)
StatusFilter = Literal["in_progress", "completed", "failed", "cancelled"]


@router.post("/files", response_model=VectorStoreFile)
async def create_vector_store_file(
    vector_store_id: str,
    body: CreateVectorStoreFileRequest,
    project: ProjectDep,
    services: ServicesDep,
) -> Any:
    return await services.vector_store_files.create(project, vector_store_id, body)


@router.get("/files", response_model=ListResponse[VectorStoreFile])
async def list_vector_store_files(
    vector_store_id: str,
    page: PageDep,
    project: ProjectDep,
    services: ServicesDep,
    filter: StatusFilter | None = None,
) -> Any:
    found = await services.vector_store_files.list(project, vector_store_id, page, filter)
    return found.envelope()


@router.get("/files/{file_id}", response_model=VectorStoreFile)
async def get_vector_store_file(
    vector_store_id: str, file_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_store_files.retrieve(project, vector_store_id, file_id)


@router.post("/files/{file_id}", response_model=VectorStoreFile)
async def update_vector_store_file(
    vector_store_id: str,
    file_id: str,
    body: UpdateVectorStoreFileRequest,
    project: ProjectDep,
    services: ServicesDep,
) -> Any:
    return await services.vector_store_files.update(
        project, vector_store_id, file_id, body.attributes
    )


@router.delete("/files/{file_id}", response_model=DeletionStatus)
async def delete_vector_store_file(
    vector_store_id: str, file_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_store_files.delete(project, vector_store_id, file_id)


@router.get("/files/{file_id}/content", response_model=FileContentPage)
async def get_vector_store_file_content(
    vector_store_id: str, file_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_store_files.content(project, vector_store_id, file_id)


@router.post("/file_batches", response_model=VectorStoreFileBatch)
async def create_file_batch(
    vector_store_id: str, body: CreateFileBatchRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_store_files.create_batch(project, vector_store_id, body)


@router.get("/file_batches/{batch_id}", response_model=VectorStoreFileBatch)
async def get_file_batch(
    vector_store_id: str, batch_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_store_files.retrieve_batch(project, vector_store_id, batch_id)


@router.post("/file_batches/{batch_id}/cancel", response_model=VectorStoreFileBatch)
async def cancel_file_batch(
    vector_store_id: str, batch_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_store_files.cancel_batch(project, vector_store_id, batch_id)


@router.get("/file_batches/{batch_id}/files", response_model=ListResponse[VectorStoreFile])
async def list_file_batch_files(
    vector_store_id: str,
    batch_id: str,
    page: PageDep,
    project: ProjectDep,
    services: ServicesDep,
    filter: StatusFilter | None = None,
) -> Any:
    found = await services.vector_store_files.list(
        project, vector_store_id, page, filter, batch_id=batch_id
    )
    return found.envelope()
