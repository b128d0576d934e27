"""The HTTP server around the app: uvicorn, with limits against slow and malformed
clients.

uvicorn reads requests before the app sees them. Out of the box it waits for a
request head, and for a declared body, as long as the client likes (a client that
sends a byte now and then holds a connection for ever), and it answers a request
it cannot parse with a ``400 text/plain``. ``GuardedHttpTools`` adds:

- a deadline for the request head (``THREADLINE_REQUEST_HEAD_TIMEOUT_SECONDS``),
  counted from the connection or from the request's first byte, and a size limit
  for it (``MAX_HEAD_BYTES``, answered ``431``);
- a deadline between two pieces of a request body
  (``THREADLINE_REQUEST_BODY_TIMEOUT_SECONDS``), not counted while the server
  itself is not reading (the app is busy with what it has, or has not yet asked
  for the body of an ``Expect: 100-continue`` request);
- OpenAI's JSON error envelope, not ``text/plain``, on the ``400`` for a request
  that is not HTTP (an unknown method, a negative or repeated ``Content-Length``).

A connection past a deadline is closed; the app, if it was reading the body, sees
the client as gone.

An idle keep-alive connection is closed after ``THREADLINE_HTTP_KEEP_ALIVE_SECONDS``,
well after clients' pools give it up (uvicorn's 5 s was httpx's own expiry: a
client that reused a connection at that moment sent its request into the close and
got a ``ReadError``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from threadline.errors import InvalidRequestError, ThreadlineError
from threadline.settings import Settings

MAX_HEAD_BYTES = 64 * 1024
"""The request line and headers together (a URL of 100,000 characters is refused)."""

_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}


class HeadTooLargeError(ThreadlineError):
    status_code = 431
    error_type = "invalid_request_error"


class _HeadTooLarge(Exception):
    pass


def _head_error() -> HeadTooLargeError:
    return HeadTooLargeError(
        f"The request line and headers may be at most {MAX_HEAD_BYTES} bytes.",
        code="request_header_too_large",
    )


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, a head size limit and JSON errors."""

    head_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0
        self._parsed_head = 0
        self._head_too_large = False

    # -- deadlines ---------------------------------------------------------------

    def _arm(self, seconds: float, handler: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_late(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _body_late(self) -> None:
        self._timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            self._arm(self.body_timeout, self._body_late)  # the wait is ours, not theirs
            return
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        elif self.cycle is not None and self.cycle.more_body:
            self._arm(self.body_timeout, self._body_late)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse(_head_error())

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        # In the parser's callbacks: a head that came in one piece is measured too.
        self._parsed_head += size
        if self._parsed_head > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise _HeadTooLarge  # stops the parser; `send_400_response` says why

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_head = 0
        if not self._in_head:  # the first byte of a next request on this connection
            self._in_head, self._head_bytes = True, 0
            self._arm(self.head_timeout, self._head_late)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._arm(self.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # -- errors ------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(_head_error())
        else:
            self._refuse(InvalidRequestError(f"{msg} The request is not valid HTTP/1.1."))

    def _refuse(self, error: ThreadlineError) -> None:
        self._disarm()
        body = json.dumps(error.envelope()).encode()
        status = error.status_code
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error"))]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def protocol_for(settings: Settings) -> type[GuardedHttpTools]:
    """The protocol class with ``settings``' deadlines (uvicorn builds one per
    connection from the class)."""
    return type(
        "ThreadlineHttp",
        (GuardedHttpTools,),
        {
            "head_timeout": settings.request_head_timeout_seconds,
            "body_timeout": settings.request_body_timeout_seconds,
        },
    )


def config(app: Any, settings: Settings, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app``, with the limits above."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(settings),
        ws="none",
        timeout_keep_alive=settings.http_keep_alive_seconds,
        **options,
    )
