"""/v1/assistants"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from threadline.api.deps import PageDep, ProjectDep, ServicesDep
from threadline.api.requests import JSONRoute
from threadline.schemas.assistant import (
    Assistant,
    CreateAssistantRequest,
    ModifyAssistantRequest,
)
from threadline.schemas.common import DeletionStatus, ListResponse

router = APIRouter(prefix="/assistants", tags=["Assistants"], route_class=JSONRoute)


@router.post("", response_model=Assistant)
async def create_assistant(
    body: CreateAssistantRequest, project: ProjectDep, services: ServicesDep
) -> dict[str, Any]:
    return await services.assistants.create(project, body)


@router.get("", response_model=ListResponse[Assistant])
async def list_assistants(page: PageDep, project: ProjectDep, services: ServicesDep) -> Any:
    return (await services.assistants.list(project, page)).envelope()


@router.get("/{assistant_id}", response_model=Assistant)
async def get_assistant(assistant_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.assistants.retrieve(project, assistant_id)


@router.post("/{assistant_id}", response_model=Assistant)
async def modify_assistant(
    assistant_id: str, body: ModifyAssistantRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.assistants.modify(project, assistant_id, body)


@router.delete("/{assistant_id}", response_model=DeletionStatus)
async def delete_assistant(assistant_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.assistants.delete(project, assistant_id)
