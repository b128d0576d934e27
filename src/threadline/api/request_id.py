"""Every request has an id: the client's ``x-request-id`` when it is a plain
token (bounded, see ``observability.logs``), else a new one. It is echoed as
``x-request-id`` on every response, errors included, kept in the request's
``state`` and carried by the request's log lines."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.observability.logs import bind_request, request_id_from

HEADER = b"x-request-id"


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", ()) if k == HEADER), None)
        request_id = request_id_from(given)
        # The scope's state reaches the handler of unexpected errors, which answers
        # outside this middleware (Starlette's outermost one).
        scope.setdefault("state", {})["request_id"] = request_id
        bind_request(request_id)
        raw = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != HEADER]
                message = {**message, "headers": [*headers, (HEADER, raw)]}
            await send(message)

        await self.app(scope, receive, send_with_id)
