"""/v1/threads"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from threadline.api.deps import PageDep, ProjectDep, ServicesDep
from threadline.api.requests import JSONRoute
from threadline.schemas.common import DeletionStatus, ListResponse
from threadline.schemas.thread import CreateThreadRequest, ModifyThreadRequest, Thread

router = APIRouter(prefix="/threads", tags=["Threads"], route_class=JSONRoute)


@router.post("", response_model=Thread)
async def create_thread(
    project: ProjectDep, services: ServicesDep, body: CreateThreadRequest | None = None
) -> Any:
    return await services.threads.create(project, body or CreateThreadRequest())


@router.get(
    "",
    response_model=ListResponse[Thread],
    description="The project's threads, newest first by default, paged like every list. "
    "threadline's own: OpenAI's API has no way to list threads.",
)
async def list_threads(page: PageDep, project: ProjectDep, services: ServicesDep) -> Any:
    return (await services.threads.list(project, page)).envelope()


@router.get("/{thread_id}", response_model=Thread)
async def get_thread(thread_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.threads.retrieve(project, thread_id)


@router.post("/{thread_id}", response_model=Thread)
async def modify_thread(
    thread_id: str, body: ModifyThreadRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.threads.modify(project, thread_id, body)


@router.delete("/{thread_id}", response_model=DeletionStatus)
async def delete_thread(thread_id: str, project: ProjectDep, services: ServicesDep) -> Any:
    return await services.threads.delete(project, thread_id)
