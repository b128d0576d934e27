"""Reading tool calls out of the local model's reply, in the formats small models emit.

A call counts only when it names an offered function and its arguments match that
function's parameters schema (checked with ``jsonschema-rs``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema_rs

from threadline.models.base import FunctionTool
from threadline.models.local.prompt import load_arguments


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)

    def key(self) -> tuple[str, str]:
        return self.name, json.dumps(self.arguments, sort_keys=True)


_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```[a-zA-Z_]*\s*\n?(.*?)(?:```|$)", re.S)


def parse_tool_calls(text: str, tools: Sequence[FunctionTool]) -> list[ParsedCall] | None:
    """The calls in ``text``, or ``None`` when it is not (only) valid calls of ``tools``.

    Accepts ``<tool_call>`` blocks, fenced JSON, bare JSON objects and lists of them, with
    ``arguments``/``parameters`` as an object or a JSON string. Every call must name one
    of ``tools`` and carry arguments that match its parameters schema.
    """
    by_name = {t.name: t for t in tools}
    stripped = text.strip()
    if "<tool_call>" in stripped:
        chunks = [m.group(1) for m in _TAGGED.finditer(stripped)]
    elif stripped.startswith("```"):
        chunks = [m.group(1) for m in _FENCED.finditer(stripped)]
    else:
        chunks = [stripped]
    calls: list[ParsedCall] = []
    for chunk in chunks:
        values = _json_values(chunk)
        if values is None:
            return None
        for value in values:
            for item in value if isinstance(value, list) else [value]:
                call = _normalise_call(item, by_name)
                if call is None:
                    return None
                calls.append(call)
    return calls or None


def _json_values(chunk: str) -> list[Any] | None:
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos, text = 0, chunk.strip()
    while pos < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return None
        values.append(value)
        while pos < len(text) and text[pos] in " \t\r\n,;":
            pos += 1
    return values


def _normalise_call(item: Any, tools: dict[str, FunctionTool]) -> ParsedCall | None:
    if not isinstance(item, dict):
        return None
    if item.get("type") == "function" and isinstance(item.get("function"), dict):
        item = item["function"]
    name: Any = item.get("name", item.get("tool", item.get("tool_name")))
    if name is None and isinstance(item.get("function"), str):
        name = item["function"]
    if name is None and isinstance(item.get("function"), dict):
        item = item["function"]
        name = item.get("name")
    if not isinstance(name, str) or name not in tools:
        return None
    args: Any = {}
    for key in ("arguments", "parameters", "args", "input"):
        if key in item:
            args = item[key]
            break
    if isinstance(args, str):
        try:
            args = load_arguments(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    schema = tools[name].parameters or {"type": "object"}
    if not matches_schema(args, schema):
        return None
    return ParsedCall(name, args)


def matches_schema(value: Any, schema: Any) -> bool:
    """Whether ``value`` is valid against the JSON schema ``schema``.

    A schema that cannot be compiled (not a schema, or a ``$ref`` that does not
    resolve) accepts everything: the function's author asked for a shape the model
    cannot be held to, so the call is judged on its name alone.
    """
    if not isinstance(schema, dict):
        return True
    validator = _validator(json.dumps(schema, sort_keys=True))
    return validator is None or validator.is_valid(value)


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """The compiled validator of a schema (by its canonical JSON), or ``None``."""
    try:
        return jsonschema_rs.validator_for(json.loads(schema_json), retriever=_no_fetch)
    except (ValueError, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError):
        return None


def _no_fetch(uri: str) -> Any:
    """Remote ``$ref``s are never fetched: a tool's schema must be self-contained."""
    raise ValueError(f"remote references are not followed: {uri}")
