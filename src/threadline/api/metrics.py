"""``GET /metrics``: the process's metrics in Prometheus' text format.

Open by default, as scrapers expect; with ``THREADLINE_METRICS_TOKEN`` it asks for
``Authorization: Bearer <token>`` (an API key does not open it: it counts every
project's runs). With ``THREADLINE_METRICS_PORT`` it is served on that port
instead, by ``MetricsListener`` (``threadline worker`` processes serve it so).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from aiohttp import web
from fastapi import APIRouter, Depends, Header, Response

from threadline.api.deps import ServicesDep
from threadline.errors import AuthenticationError, NotFoundError
from threadline.observability.metrics import CONTENT_TYPE_LATEST
from threadline.services.catalog import Services

router = APIRouter(include_in_schema=False)


def check_token(expected: str | None, authorization: str | None) -> None:
    """Raise ``AuthenticationError`` unless ``authorization`` bears ``expected``
    (nothing is asked when no token is set)."""
    if expected is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise AuthenticationError(
            "/metrics needs the metrics token: 'Authorization: Bearer <token>'.",
            code="invalid_metrics_token",
        )


async def _on_api_port(services: ServicesDep) -> Services:
    if services.settings.metrics_port is not None:
        raise NotFoundError("Invalid URL (GET /metrics): metrics are served on their own port.")
    return services


@router.get("/metrics")
async def metrics(
    services: Annotated[Services, Depends(_on_api_port)],
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    check_token(services.settings.metrics_token, authorization)
    return Response(await services.metrics.scrape(), media_type=CONTENT_TYPE_LATEST)


class MetricsListener:
    """``/metrics`` on a port of its own (aiohttp, on the process's event loop)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            check_token(self.services.settings.metrics_token, request.headers.get("Authorization"))
        except AuthenticationError as exc:
            return web.json_response(exc.envelope(), status=exc.status_code)
        body = await self.services.metrics.scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        settings = self.services.settings
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, settings.metrics_host or settings.host, settings.metrics_port or 0
        )
        await site.start()

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
