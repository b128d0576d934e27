"""The ASGI application: routers under ``/v1``, error envelopes, start-up."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from threadline import __version__
from threadline.api import (
    assistants,
    errors,
    files,
    messages,
    metrics,
    openapi,
    runs,
    steps,
    threads,
    uploads,
    vector_store_files,
    vector_stores,
)
from threadline.api.limits import BodySizeLimit
from threadline.api.request_id import RequestId
from threadline.api.requests import RefuseUnstorableURL
from threadline.services.catalog import Services
from threadline.settings import Settings
from threadline.web import site
from threadline.wiring import build_services

log = logging.getLogger("threadline")


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or Settings()
    built = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await built.start()
        listener = metrics.MetricsListener(built) if settings.metrics_port is not None else None
        if listener is not None:
            await listener.start()
        # What startup built (modules, schemas, pools) lives as long as the server:
        # frozen, a full collection scans only what requests made since (one such
        # pause in a benchmark's server went from 190 ms to 28 ms).
        gc.collect()
        gc.freeze()
        if await built.keys.dev_mode():
            log.warning(
                "no API keys configured: single-user development mode, every request "
                "belongs to project 'default' (create a key with `threadline keys create`)"
            )
        try:
            yield
        finally:
            if listener is not None:
                await listener.aclose()
            await built.aclose()

    app = FastAPI(
        title="threadline",
        version=__version__,
        description="A self-hosted server for the OpenAI Assistants API v2.",
        lifespan=lifespan,
        docs_url=None,  # served by `web` from the package's own assets, offline
        redoc_url=None,
    )
    app.state.services = built
    errors.install(app)
    # `/threads/runs` must come before `/threads/{thread_id}`. The routers are tried
    # in order for each request: the runs', hit most (streams, polling), first.
    app.include_router(runs.thread_and_run, prefix="/v1")
    for module in (runs, steps, messages, threads, assistants, files):
        app.include_router(module.router, prefix="/v1")
    app.include_router(vector_store_files.router, prefix="/v1")
    app.include_router(vector_stores.router, prefix="/v1")
    app.include_router(uploads.router, prefix="/v1")
    app.include_router(uploads.parts, prefix="/v1")

    openapi.install(app)
    site.install(app)
    app.include_router(metrics.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        await built.check_ready()  # NotReadyError: 503 in the error envelope
        return {"status": "ready"}

    app.add_middleware(
        BodySizeLimit, max_body=settings.max_body_bytes, max_upload=settings.max_upload_bytes
    )
    app.add_middleware(RefuseUnstorableURL)
    app.add_middleware(RequestId)  # outermost: its header is on every response
    return app
