"""The public ``/v1`` API, called in-process with the browser's own key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp


class ApiError(Exception):
    """A ``/v1`` answer of 4xx or 5xx, with OpenAI's error envelope's message."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


class Api:
    """``/v1`` as the key in ``authorization`` sees it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def get(self, path: str, **params: Any) -> Any:
        return await self._send("GET", path, params=params)

    async def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return await self._send("POST", path, json=dict(body or {}))

    async def upload(self, filename: str, content: bytes, purpose: str = "assistants") -> Any:
        files = {"file": (filename or "upload", content)}
        return await self._send("POST", "/files", files=files, data={"purpose": purpose})

    async def delete(self, path: str) -> Any:
        return await self._send("DELETE", path)

    async def content(self, path: str) -> bytes:
        response = await self._client.get(path)
        _raise_for(response)
        return response.content

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._client.request(method, path, **kwargs)
        _raise_for(response)
        return response.json()


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        message, param = str(error["message"]), error.get("param")
    except (ValueError, KeyError, TypeError):
        message, param = response.text or response.reason_phrase, None
    raise ApiError(response.status_code, message, param)


@asynccontextmanager
async def connect(
    app: ASGIApp, authorization: str, request_id: str | None = None
) -> AsyncIterator[Api]:
    """An ``Api`` over ``app`` itself (no socket), sending ``authorization``, and
    ``request_id`` (the page's own) as the requests' ``x-request-id``: they run in
    the page request's task, whose log lines must keep carrying the page's id."""
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": authorization, "OpenAI-Beta": "assistants=v2"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    async with httpx.AsyncClient(
        transport=transport, base_url="http://threadline/v1", headers=headers, timeout=30
    ) as client:
        yield Api(client)
