"""Renders every failure as OpenAI's error envelope, with the status it used.
How a request that fails validation is worded is ``api/validation.py``'s."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from threadline.api.validation import validation_error
from threadline.errors import (
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    ThreadlineError,
)

log = logging.getLogger("threadline.api")

__all__ = ["install", "validation_error"]


def _render(exc: ThreadlineError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.envelope(), status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (Starlette's own
    ``Allow`` names only those of the first route whose path matched)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def install(app: FastAPI) -> None:
    @app.exception_handler(ThreadlineError)
    async def _threadline(_: Request, exc: ThreadlineError) -> JSONResponse:
        return _render(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _render(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error: ThreadlineError
        if isinstance(exc.__cause__, ThreadlineError):
            error = exc.__cause__  # raised while FastAPI read the body
        elif exc.status_code == 404:
            error = NotFoundError(f"Invalid URL ({request.method} {request.url.path})")
        elif exc.status_code == 405:
            error = MethodNotAllowedError(
                f"Invalid method for URL ({request.method} {request.url.path})"
            )
            return _render(error, {"Allow": ", ".join(allowed_methods(request))})
        else:
            error = InvalidRequestError(str(exc.detail))
            error.status_code = exc.status_code  # type: ignore[misc]
        return _render(error, dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Answered outside the middleware that adds it to every other response.
        request_id = getattr(request.state, "request_id", None)
        headers = {"x-request-id": request_id} if request_id else None
        return _render(
            ThreadlineError("The server had an error while processing your request."), headers
        )
