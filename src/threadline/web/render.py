"""The playground's templates and the filters they use."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

ACTIVE = {"queued", "in_progress", "cancelling"}
"""Run statuses a page keeps polling through (``requires_action`` waits for a person)."""


def when(timestamp: int | None) -> str:
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(timestamp: int | None) -> str:
    """The time of day only, for moments after a dated one."""
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S")


def pretty(value: Any) -> str:
    """JSON (or a JSON string) indented for reading."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    return json.dumps(value, indent=2, ensure_ascii=False)


def annotated(text: dict[str, Any]) -> Markup:
    """A message's text with its annotations marked and numbered."""
    value: str = text.get("value") or ""
    out: list[str] = []
    at = 0
    for number, note in enumerate(text.get("annotations") or [], start=1):
        start, end = note.get("start_index"), note.get("end_index")
        if not (isinstance(start, int) and isinstance(end, int) and at <= start <= end):
            continue
        out.append(str(escape(value[at:start])))
        out.append(
            f'<mark class="cite" title="{escape(note.get("type", ""))}">'
            f"{escape(value[start:end])}<sup>{number}</sup></mark>"
        )
        at = end
    out.append(str(escape(value[at:])))
    return Markup("".join(out))


def data_uri(content: bytes) -> str:
    """An image's bytes as a ``data:`` URI (``<img>`` cannot send the bearer key)."""
    kinds = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
    mime = next((m for magic, m in kinds.items() if content.startswith(magic)), None)
    if mime is None:
        mime = "image/webp" if content[8:12] == b"WEBP" else "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(content).decode()}"


def size(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


env = Environment(
    loader=PackageLoader("threadline.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(when=when, clock=clock, pretty=pretty, annotated=annotated, size=size)
env.globals["ACTIVE"] = ACTIVE


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(env.get_template(template).render(**context), status_code=status_code)
