"""Puts the playground, ``/`` and the offline ``/docs`` on the app."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, RedirectResponse, Response

from threadline.web.api_client import ApiError
from threadline.web.render import page
from threadline.web.routes import ShellWanted, router

STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
"""Swagger UI 5, as the ``fastapi-offline`` package ships it (ReDoc is not served: its
bundle fetches its logo from its makers' site)."""


def install(app: FastAPI) -> None:
    """Serve the playground and its assets, and the API reference from the package
    (the app is built with ``docs_url=None, redoc_url=None``)."""
    app.mount("/playground/static", StaticFiles(directory=STATIC), name="playground-static")
    app.mount("/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.include_router(router)

    @app.exception_handler(ShellWanted)
    async def shell(request: Request, exc: ShellWanted) -> Response:
        return page("base.html", path=request.url.path, url=str(request.url))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return page("error.html", exc.status, error=exc)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/playground")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )
