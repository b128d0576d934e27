"""/v1/threads/{thread_id}/messages"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from threadline.api.deps import PageDep, ProjectDep, ServicesDep
from threadline.api.requests import JSONRoute
from threadline.schemas.common import DeletionStatus, ListResponse
from threadline.schemas.message import CreateMessageRequest, Message, ModifyMessageRequest

router = APIRouter(
    prefix="/threads/{thread_id}/messages", tags=["Assistants"], route_class=JSONRoute
)


@router.post("", response_model=Message)
async def create_message(
    thread_id: str, body: CreateMessageRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.messages.create(project, thread_id, body)


@router.get("", response_model=ListResponse[Message])
async def list_messages(
    thread_id: str,
    page: PageDep,
    project: ProjectDep,
    services: ServicesDep,
    run_id: str | None = None,
) -> Any:
    return (await services.messages.list(project, thread_id, page, run_id)).envelope()


@router.get("/{message_id}", response_model=Message)
async def get_message(
    thread_id: str, message_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.messages.retrieve(project, thread_id, message_id)


@router.post("/{message_id}", response_model=Message)
async def modify_message(
    thread_id: str,
    message_id: str,
    body: ModifyMessageRequest,
    project: ProjectDep,
    services: ServicesDep,
) -> Any:
    return await services.messages.modify(project, thread_id, message_id, body)


@router.delete("/{message_id}", response_model=DeletionStatus)
async def delete_message(
    thread_id: str, message_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.messages.delete(project, thread_id, message_id)
