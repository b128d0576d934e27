"""Reads requests as OpenAI's service read them.

- A JSON endpoint parses its body as JSON whatever the ``Content-Type`` says (or when
  there is none): ``curl -d`` and hand-rolled clients worked against OpenAI.
- A body is UTF-8 (RFC 8259); UTF-16 or UTF-32 is refused as unparsable.
- ``NaN``, ``Infinity`` and numbers too large for a double are not JSON: the body is
  refused as unparsable instead of being stored (PostgreSQL cannot hold them).
- Text that storage cannot hold (the NUL character, lone UTF-16 surrogates) is
  refused with a 400 naming the field, in a body or in the URL; so is nesting deeper
  than ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from threadline.api.validation import key_path
from threadline.errors import InvalidRequestError

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 100
"""How deep objects and arrays may nest in a body (function parameter schemas need a
few levels; hundreds only make responses that cannot be serialised)."""


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise json.JSONDecodeError("number out of range", text, 0)
    return value


def _too_deep(path: str) -> InvalidRequestError:
    name = f"'{path}'" if path else "request body"
    return InvalidRequestError(
        f"Invalid {name}: objects and arrays may be nested at most {MAX_DEPTH} levels deep.",
        param=path or None,
        code="invalid_value",
    )


def check_text(value: Any, path: str = "", depth: int = 0) -> None:
    """Raise ``InvalidRequestError`` for a string anywhere in ``value`` that storage
    cannot hold, or for nesting deeper than ``MAX_DEPTH``."""
    if depth > MAX_DEPTH:
        raise _too_deep(path)
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            name = f"'{path}'" if path else "request body"
            raise InvalidRequestError(
                f"Invalid {name}: the string contains a null character or an unpaired "
                "surrogate, which is not supported.",
                param=path or None,
                code="invalid_value",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, path, depth)
            check_text(item, key_path(path, str(key)), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{path}[{index}]", depth + 1)


def parse_json(body: bytes) -> Any:
    """``json.loads`` as strict as OpenAI's parser; storable text only."""
    try:
        # UTF-8 only (RFC 8259): `json.loads` would guess UTF-16 and UTF-32 from bytes.
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise _too_deep("") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # not UTF-8, a BOM, an integer of over 4300 digits…
        raise json.JSONDecodeError(str(exc), "", 0) from exc
    check_text(value)
    return value


class OpenAIRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """A route whose body, if any, is JSON (the Assistants endpoints)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_as_openai(request: Request) -> Response:
            scope = dict(request.scope)
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope["headers"] = [*headers, (b"content-type", b"application/json")]
            return await handler(OpenAIRequest(scope, request.receive))

        return read_as_openai


class RefuseUnstorableURL:
    """400 for a URL whose path or query holds a NUL character (``%00``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
        ):
            error = InvalidRequestError(
                f"Invalid URL ({scope.get('method', 'GET')} "
                f"{scope.get('path', '').replace(chr(0), '%00')}): "
                "null characters are not supported.",
                code="invalid_value",
            )
            response = Response(
                json.dumps(error.envelope()),
                status_code=error.status_code,
                media_type="application/json",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
