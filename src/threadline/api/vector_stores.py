"""/v1/vector_stores: the stores themselves, and search."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from threadline.api.deps import PageDep, ProjectDep, ServicesDep
from threadline.api.requests import JSONRoute
from threadline.schemas.common import DeletionStatus, ListResponse
from threadline.schemas.vector_store import (
    CreateVectorStoreRequest,
    ModifyVectorStoreRequest,
    SearchRequest,
    SearchResultsPage,
    VectorStore,
)

router = APIRouter(prefix="/vector_stores", tags=["Vector stores"], route_class=JSONRoute)


@router.post("", response_model=VectorStore)
async def create_vector_store(
    body: CreateVectorStoreRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_stores.create(project, body)


@router.get("", response_model=ListResponse[VectorStore])
async def list_vector_stores(page: PageDep, project: ProjectDep, services: ServicesDep) -> Any:
    return (await services.vector_stores.list(project, page)).envelope()


@router.get("/{vector_store_id}", response_model=VectorStore)
async def get_vector_store(vector_store_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.vector_stores.retrieve(project, vector_store_id)


@router.post("/{vector_store_id}", response_model=VectorStore)
async def modify_vector_store(
    vector_store_id: str,
    body: ModifyVectorStoreRequest,
    project: ProjectDep,
    services: ServicesDep,
) -> Any:
    return await services.vector_stores.modify(project, vector_store_id, body)


@router.delete("/{vector_store_id}", response_model=DeletionStatus)
async def delete_vector_store(
    vector_store_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_stores.delete(project, vector_store_id)


@router.post("/{vector_store_id}/search", response_model=SearchResultsPage)
async def search_vector_store(
    vector_store_id: str, body: SearchRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.vector_stores.search(project, vector_store_id, body)
