"""Log lines with their context: the request's id, and the run's id, thread and
project, set once where a request or a run's turn begins (``contextvars``, so
every line of that task, and of the tasks it starts, carries them).

``configure(level, "json")`` writes one JSON object a line (``python-json-logger``)
with ``time``, ``level``, ``logger``, ``message`` and whichever of ``request_id``,
``run_id``, ``thread_id`` and ``project`` are set; ``"text"`` keeps the plain
format.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

CONTEXT_FIELDS = ("request_id", "run_id", "thread_id", "project")
_CONTEXT: dict[str, ContextVar[str | None]] = {
    name: ContextVar(name, default=None) for name in CONTEXT_FIELDS
}
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

REQUEST_ID_MAX = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:@/+=-]{{1,{REQUEST_ID_MAX}}}")


@contextmanager
def run_context(
    run_id: str, thread_id: str | None = None, project: str | None = None
) -> Iterator[None]:
    """The lines logged inside (and by the tasks started inside) are about this run."""
    tokens = [_CONTEXT["run_id"].set(run_id)]
    if thread_id is not None:
        tokens.append(_CONTEXT["thread_id"].set(thread_id))
    if project is not None:
        tokens.append(_CONTEXT["project"].set(project))
    try:
        yield
    finally:
        for token in reversed(tokens):
            token.var.reset(token)


def bind_request(request_id: str) -> None:
    _CONTEXT["request_id"].set(request_id)


def request_id_from(header: bytes | None) -> str:
    """A client's ``x-request-id`` if it is a plain token of at most
    ``REQUEST_ID_MAX`` characters (letters, digits, ``._:@/+=-``), else a new one."""
    if header is not None:
        try:
            given = header.decode("ascii").strip()
        except UnicodeDecodeError:
            given = ""
        if _REQUEST_ID.fullmatch(given):
            return given
    return "req_" + secrets.token_hex(12)


class ContextFilter(logging.Filter):
    """Puts the context that is set on each record (as attributes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT.items():
            value = var.get()
            if value is not None:
                setattr(record, name, value)
        return True


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            timestamp="time",
        )
    return logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: str) -> None:
    """The root logger writes to stderr in ``fmt`` (``text`` or ``json``); as
    ``logging.basicConfig``, nothing changes if the root has handlers already."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler])


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging set-up: its loggers go to the root's handler (and format)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }
