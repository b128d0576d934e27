"""/v1/threads/{thread_id}/runs/{run_id}/steps"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from threadline.api.deps import Include, PageDep, ProjectDep, ServicesDep
from threadline.api.requests import JSONRoute
from threadline.api.step_results import shown_step
from threadline.schemas.common import ListResponse
from threadline.schemas.run import RunStep

router = APIRouter(
    prefix="/threads/{thread_id}/runs/{run_id}/steps", tags=["Assistants"], route_class=JSONRoute
)


@router.get("", response_model=ListResponse[RunStep])
async def list_run_steps(
    thread_id: str,
    run_id: str,
    page: PageDep,
    project: ProjectDep,
    services: ServicesDep,
    include: Include = None,
) -> Any:
    envelope = (await services.runs.list_steps(project, thread_id, run_id, page)).envelope()
    envelope["data"] = [shown_step(step, include) for step in envelope["data"]]
    return envelope


@router.get("/{step_id}", response_model=RunStep)
async def get_run_step(
    thread_id: str,
    run_id: str,
    step_id: str,
    project: ProjectDep,
    services: ServicesDep,
    include: Include = None,
) -> Any:
    step = await services.runs.retrieve_step(project, thread_id, run_id, step_id)
    return shown_step(step, include)
