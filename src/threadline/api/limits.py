"""Refuses request bodies over the configured size before they are read."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.domain.limits import UPLOAD_PART_MAX_BYTES
from threadline.errors import RequestTooLargeError


class BodySizeLimit:
    """413 for a body over ``max_body`` bytes (``max_upload`` on file uploads),
    whether the size is declared up front or only discovered while reading."""

    def __init__(self, app: ASGIApp, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.max_body
        if path.rstrip("/").endswith("/files"):
            limit = self.max_upload + 64 * 1024
        elif path.startswith("/v1/uploads/") and path.rstrip("/").endswith("/parts"):
            limit = max(self.max_body, UPLOAD_PART_MAX_BYTES + 64 * 1024)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        error = RequestTooLargeError(
            f"Request body too large: the limit is {limit} bytes.", code="request_too_large"
        )
        body = json.dumps(error.envelope()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(RequestTooLargeError):
    """Raised while the app reads the body. FastAPI wraps errors raised while it
    reads a body into a 400; the error handler unwraps this one back to a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Request body too large: the limit is {limit} bytes.", code="request_too_large"
        )
