"""/v1/threads/{thread_id}/runs and /v1/threads/runs"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from prometheus_client import Gauge

from threadline.api.deps import Include, PageDep, ProjectDep, ServicesDep
from threadline.api.requests import JSONRoute
from threadline.api.streaming import run_stream, snapshot_events
from threadline.domain.run_status import RunStatus
from threadline.schemas.common import ListResponse
from threadline.schemas.run import (
    CreateRunRequest,
    CreateThreadAndRunRequest,
    ModifyRunRequest,
    Run,
    SubmitToolOutputsRequest,
)
from threadline.schemas.stream_event import Event
from threadline.services.catalog import Services

router = APIRouter(prefix="/threads/{thread_id}/runs", tags=["Assistants"], route_class=JSONRoute)
thread_and_run = APIRouter(tags=["Assistants"], route_class=JSONRoute)


@thread_and_run.post("/threads/runs", response_model=Run)
async def create_thread_and_run(
    body: CreateThreadAndRunRequest, project: ProjectDep, services: ServicesDep
) -> Any:
    _, run = await services.runs.create_thread_and_run(project, body)
    return _stream(services, project, run) if body.stream else run


@router.post("", response_model=Run)
async def create_run(
    thread_id: str,
    body: CreateRunRequest,
    project: ProjectDep,
    services: ServicesDep,
    include: Include = None,
) -> Any:
    run = await services.runs.create(project, thread_id, body)
    if not body.stream:
        return run
    return _stream(services, project, run, include=include)


@router.get("", response_model=ListResponse[Run])
async def list_runs(
    thread_id: str, page: PageDep, project: ProjectDep, services: ServicesDep
) -> Any:
    return (await services.runs.list(project, thread_id, page)).envelope()


@router.get("/{run_id}", response_model=Run)
async def get_run(
    thread_id: str, run_id: str, response: Response, project: ProjectDep, services: ServicesDep
) -> Any:
    run = await services.runs.retrieve(project, thread_id, run_id)
    if not RunStatus(run["status"]).is_terminal:
        response.headers["openai-poll-after-ms"] = str(services.settings.poll_after_ms)
    return run


@router.post("/{run_id}", response_model=Run)
async def modify_run(
    thread_id: str,
    run_id: str,
    body: ModifyRunRequest,
    project: ProjectDep,
    services: ServicesDep,
) -> Any:
    return await services.runs.modify(project, thread_id, run_id, body)


@router.post("/{run_id}/cancel", response_model=Run)
async def cancel_run(
    thread_id: str, run_id: str, project: ProjectDep, services: ServicesDep
) -> Any:
    return await services.runs.cancel(project, thread_id, run_id)


@router.post("/{run_id}/submit_tool_outputs", response_model=Run)
async def submit_tool_outputs(
    thread_id: str,
    run_id: str,
    body: SubmitToolOutputsRequest,
    project: ProjectDep,
    services: ServicesDep,
) -> Any:
    # The spec gives this operation no `include[]`: its stream's steps never carry
    # file_search results' content (run create's `include[]` is for its own stream).
    after = await services.bus.last_seq(run_id)
    run = await services.runs.submit_tool_outputs(project, thread_id, run_id, body)
    return _stream(services, project, run, after) if body.stream else run


@router.get("/{run_id}/events", response_model=None)
async def resume_stream(
    thread_id: str,
    run_id: str,
    project: ProjectDep,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
    include: Include = None,
) -> Any:
    """Not in OpenAI's API: the run's event stream from after ``Last-Event-ID``
    (or ``?after=N``); 0 replays from the start. A cursor past the run's last event
    reads as "seen it all": the stream sends what comes next and ends when the run
    pauses or ends, like any other. ``include[]`` as on run create: a resumed
    stream's steps carry their file_search results' content only when asked."""
    # The newest event is read before the run: a run that ends after this read
    # tells it with an event past `last`, which the subscription below receives.
    last = await services.bus.last_seq(run_id)
    run = await services.runs.retrieve(project, thread_id, run_id)
    cursor = after if after is not None else _event_id(last_event_id)
    status = RunStatus(run["status"])
    if last <= cursor and (status.is_terminal or status == RunStatus.REQUIRES_ACTION):
        # Seen to the end: nothing but `done`; a buffer that is gone: the stored run.
        lead = [] if 0 < last <= cursor else snapshot_events(cursor + 1, run)
        return run_stream(services.bus, run_id, cursor, lead, include, _streams(services))
    return _stream(services, project, run, min(cursor, last), include)


def _stream(
    services: Services,
    project: str,
    run: dict[str, Any],
    after: int = 0,
    include: Include = None,
) -> StreamingResponse:
    """The run's live stream; one whose events stop coming (the bus lost them)
    ends with the stored run once it paused or ended."""
    run_id, thread_id = run["id"], run["thread_id"]

    async def settle(cursor: int) -> list[Event] | None:
        stored = await services.runs.retrieve(project, thread_id, run_id)
        status = RunStatus(stored["status"])
        if status.is_terminal or status == RunStatus.REQUIRES_ACTION:
            return snapshot_events(cursor + 1, stored)
        return None

    return run_stream(
        services.bus, run_id, after, include=include, opened=_streams(services), settle=settle
    )


def _streams(services: Services) -> Gauge:
    return services.metrics.recorder.active_streams


def _event_id(raw: str | None) -> int:
    return int(raw) if raw and raw.strip().isdigit() else 0
