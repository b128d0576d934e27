"""What the playground's forms send, turned into ``/v1`` request bodies."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

RESPONSE_FORMATS = ("auto", "text", "json_object", "json_schema")


class FormError(ValueError):
    """A form field the playground cannot turn into a request, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def ids(text: str) -> list[str]:
    """Ids typed one after another, separated by commas, spaces or new lines."""
    return [part for part in re.split(r"[\s,]+", text) if part]


def _json(field: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FormError(field, f"{field} is not valid JSON: {exc}") from None


def _number(field: str, text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # "nan", "inf", "1e999": no JSON number holds them
        raise FormError(field, f"{field} must be a number, not {text!r}")
    return value


def functions(text: str) -> list[dict[str, Any]]:
    """Function tools from a JSON object or list of objects, each ``{"name", ...}``
    or already ``{"type": "function", "function": {...}}``."""
    if not text.strip():
        return []
    value = _json("functions", text)
    items = value if isinstance(value, list) else [value]
    tools = []
    for item in items:
        if not isinstance(item, dict):
            raise FormError("functions", "functions must be JSON objects with a name")
        function = item.get("function", item) if item.get("type") == "function" else item
        tools.append({"type": "function", "function": function})
    return tools


def assistant_body(form: Mapping[str, str]) -> dict[str, Any]:
    """A create or modify body for ``/v1/assistants`` from the assistant form."""
    tools: list[dict[str, Any]] = [
        {"type": kind} for kind in ("code_interpreter", "file_search") if form.get(kind)
    ]
    tools += functions(form.get("functions", ""))
    resources: dict[str, Any] = {}
    if form.get("code_interpreter"):
        resources["code_interpreter"] = {"file_ids": ids(form.get("code_interpreter_files", ""))}
    if form.get("file_search"):
        resources["file_search"] = {"vector_store_ids": ids(form.get("vector_store_ids", ""))}
    kind = form.get("response_format", "auto")
    if kind not in RESPONSE_FORMATS:
        raise FormError("response_format", f"response_format must be one of {RESPONSE_FORMATS}")
    response_format: Any = kind if kind == "auto" else {"type": kind}
    if kind == "json_schema":
        response_format["json_schema"] = _json("json_schema", form.get("json_schema", ""))
    return {
        "model": form.get("model", "").strip(),
        "name": form.get("name", "").strip() or None,
        "description": form.get("description", "").strip() or None,
        "instructions": form.get("instructions", "") or None,
        "temperature": _number("temperature", form.get("temperature", "")),
        "top_p": _number("top_p", form.get("top_p", "")),
        "tools": tools,
        "tool_resources": resources,
        "response_format": response_format,
    }


def assistant_fields(assistant: Mapping[str, Any]) -> dict[str, str]:
    """The assistant form's fields for an existing assistant."""
    tools = assistant.get("tools") or []
    kinds = {tool["type"] for tool in tools}
    functions_ = [tool["function"] for tool in tools if tool["type"] == "function"]
    resources = assistant.get("tool_resources") or {}
    response_format = assistant.get("response_format") or "auto"
    kind = response_format if isinstance(response_format, str) else response_format["type"]
    schema = response_format.get("json_schema") if isinstance(response_format, dict) else None

    def number(key: str) -> str:
        value = assistant.get(key)
        return "" if value is None else f"{value:g}"

    return {
        "model": assistant.get("model") or "",
        "name": assistant.get("name") or "",
        "description": assistant.get("description") or "",
        "instructions": assistant.get("instructions") or "",
        "temperature": number("temperature"),
        "top_p": number("top_p"),
        "code_interpreter": "on" if "code_interpreter" in kinds else "",
        "file_search": "on" if "file_search" in kinds else "",
        "functions": json.dumps(functions_, indent=2) if functions_ else "",
        "code_interpreter_files": " ".join(
            (resources.get("code_interpreter") or {}).get("file_ids") or []
        ),
        "vector_store_ids": " ".join(
            (resources.get("file_search") or {}).get("vector_store_ids") or []
        ),
        "response_format": kind,
        "json_schema": json.dumps(schema, indent=2) if schema else "",
    }
