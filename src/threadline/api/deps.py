"""Thin dependency getters: the services, the caller's project, list parameters."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Header, Query, Request

from threadline.domain import limits
from threadline.domain.pages import PageParams
from threadline.services.catalog import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_project(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    services = get_services(request)
    return await services.keys.project_for(authorization)


async def page_params(
    limit: Annotated[
        int, Query(ge=limits.LIST_LIMIT_MIN, le=limits.LIST_LIMIT_MAX)
    ] = limits.LIST_LIMIT_DEFAULT,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    before: str | None = None,
) -> PageParams:
    # An empty cursor (`?after=`) is no cursor, as OpenAI's service read it.
    return PageParams(limit=limit, order=order, after=after or None, before=before or None)


async def _services(request: Request) -> Services:
    # async: FastAPI would run a plain function in its thread pool, a hop per request.
    return get_services(request)


INCLUDABLE = Literal["step_details.tool_calls[*].file_search.results[*].content"]
"""What ``include[]`` may ask for on runs and run steps (the spec's enum)."""
Include = Annotated[list[INCLUDABLE] | None, Query(alias="include[]")]

ServicesDep = Annotated[Services, Depends(_services)]
ProjectDep = Annotated[str, Depends(get_project)]
PageDep = Annotated[PageParams, Depends(page_params)]
