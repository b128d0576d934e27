"""Validate wire objects against OpenAI's own OpenAPI document.

``assert_schema(obj, "RunObject")`` checks ``obj`` against
``#/components/schemas/RunObject`` of ``../shared/spec/openai-openapi.yaml``;
``assert_event(name, data)`` checks one stream event against
``AssistantStreamEvent``. The 3 MB YAML is parsed once and cached as JSON in
the system temp directory (keyed by the file's hash), so later sessions load it
in milliseconds.

The document mixes OpenAPI 3.1 nullability with the 3.0 keyword
``nullable: true`` (plain, next to ``$ref``, and as
``allOf: [{$ref: ...}, {nullable: true}]``); all three are read as "or null".
Formats are not checked (``format: unixtime`` is an integer, checked as such).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "spec" / "openai-openapi.yaml"
RUN_STATUSES = {
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
}
INT32_MAX = 2**31
_PREFIX = "#/components/schemas/"


def _is_nullable_marker(node: Any) -> bool:
    """``{nullable: true}`` alone (maybe described): the ``allOf`` member form."""
    if not isinstance(node, dict) or node.get("nullable") is not True:
        return False
    return set(node) <= {"nullable", "description"}


def _or_null(schema: Any) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def normalise(node: Any) -> Any:
    """``node`` with every OpenAPI 3.0 ``nullable: true`` turned into ``anyOf [.., null]``."""
    if isinstance(node, list):
        return [normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: normalise(value) for key, value in node.items() if key != "nullable"}
    nullable = node.get("nullable") is True
    all_of = node.get("allOf")
    if isinstance(all_of, list) and any(_is_nullable_marker(m) for m in all_of):
        kept = [normalise(m) for m in all_of if not _is_nullable_marker(m)]
        out["allOf"] = kept
        nullable = True
    if nullable:
        return _or_null(out)
    return out


def _cache_file(digest: str) -> Path:
    return Path(tempfile.gettempdir()) / f"threadline-openapi-{digest[:16]}.json"


@lru_cache(maxsize=1)
def schemas() -> dict[str, Any]:
    """``components.schemas`` of the spec, normalised (cached across sessions)."""
    raw = SPEC_PATH.read_bytes()
    cache = _cache_file(hashlib.sha256(raw).hexdigest())
    if cache.exists():
        try:
            loaded: dict[str, Any] = json.loads(cache.read_text())
            return loaded
        except ValueError:
            pass
    document = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    text = json.dumps(normalise(document["components"]["schemas"]), default=str)
    found: dict[str, Any] = json.loads(text)  # YAML dates in examples become strings
    partial = cache.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(cache)
    return found


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_PREFIX):
            yield ref[len(_PREFIX) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _compile(root: dict[str, Any]) -> Any:
    """A validator for ``root`` carrying only the schemas it reaches (fast to build)."""
    reached: dict[str, Any] = {}
    pending = list(_refs(root))
    while pending:
        name = pending.pop()
        if name not in reached:
            reached[name] = schemas()[name]
            pending.extend(_refs(reached[name]))
    document = {**root, "components": {"schemas": reached}}
    return jsonschema_rs.Draft202012Validator(document, validate_formats=False)


@lru_cache(maxsize=64)
def validator(name: str) -> Any:
    return _compile({"$ref": f"{_PREFIX}{name}"})


def schema_errors(obj: Any, name: str) -> list[str]:
    return [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}"
        for e in validator(name).iter_errors(obj)
    ]


def assert_schema(obj: Any, name: str) -> None:
    """``obj`` is valid against ``#/components/schemas/<name>``, with every
    required key present (``null``, not missing)."""
    errors = schema_errors(obj, name)
    assert not errors, f"not a valid {name}: {errors[:5]}\n{json.dumps(obj)[:2000]}"


@lru_cache(maxsize=1)
def stream_events() -> dict[str, dict[str, Any]]:
    """Every event name of ``AssistantStreamEvent`` mapped to its ``data`` schema."""
    found: dict[str, dict[str, Any]] = {}
    pending = list(schemas()["AssistantStreamEvent"]["oneOf"])
    while pending:
        node = pending.pop()
        if "$ref" in node:
            pending.append(schemas()[node["$ref"].rsplit("/", 1)[1]])
        elif "oneOf" in node:
            pending.extend(node["oneOf"])
        else:
            for name in node["properties"]["event"]["enum"]:
                found[name] = node["properties"]["data"]
    return found


@lru_cache(maxsize=64)
def _data_validator(event: str) -> Any:
    return _compile(dict(stream_events()[event]))


def assert_event(name: str, data: Any) -> None:
    """One stream event (``event:`` name, decoded ``data:``) is one of
    ``AssistantStreamEvent``; run payloads also meet the seeds' expectations."""
    assert name in stream_events(), f"{name!r} is not an event of the spec"
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}"
        for e in _data_validator(name).iter_errors(data)
    ]
    assert not errors, f"event {name} has invalid data: {errors[:5]}\n{json.dumps(data)[:2000]}"
    # An object's event names its status, but `created` shows the first status.
    suffix = name.rpartition(".")[2]
    if name.startswith("thread.run.") and not name.startswith("thread.run.step."):
        assert_run(data)
        assert data["status"] == ("queued" if suffix == "created" else suffix), name
    elif name.startswith("thread.run.step.") and suffix != "delta":
        assert_step(data)
        assert data["status"] == ("in_progress" if suffix == "created" else suffix), name
    elif name.startswith("thread.message.") and suffix != "delta":
        assert_message(data)
        assert data["status"] == ("in_progress" if suffix == "created" else suffix), name


RUN_TIMESTAMPS = (
    "created_at",
    "expires_at",
    "started_at",
    "cancelled_at",
    "failed_at",
    "completed_at",
)


def assert_run(run: dict[str, Any]) -> None:
    """A Run as the spec and the five seed SDKs read it."""
    assert_schema(run, "RunObject")
    required = validator_required("RunObject")
    missing = [key for key in required if key not in run]
    assert not missing, f"run lacks keys {missing}"
    assert run["object"] == "thread.run"
    assert run["status"] in RUN_STATUSES
    assert run["status"] == run["status"].lower()
    for key in RUN_TIMESTAMPS:
        value = run[key]
        assert value is None or (type(value) is int and 0 < value < INT32_MAX), (key, value)
    terminal = run["status"] in {"cancelled", "failed", "completed", "incomplete", "expired"}
    if terminal:
        assert run["expires_at"] is None, run
        assert run["usage"] is not None, run
    else:
        assert run["usage"] is None, run


def assert_step(step: dict[str, Any]) -> None:
    assert_schema(step, "RunStepObject")
    for key in ("created_at", "expired_at", "cancelled_at", "failed_at", "completed_at"):
        value = step[key]
        assert value is None or (type(value) is int and 0 < value < INT32_MAX), (key, value)
    if step["status"] == "in_progress":
        assert step["usage"] is None, step
    if step["status"] == "completed":
        assert step["usage"] is not None, step


def assert_message(message: dict[str, Any]) -> None:
    assert_schema(message, "MessageObject")
    for key in ("created_at", "completed_at", "incomplete_at"):
        value = message[key]
        assert value is None or (type(value) is int and 0 < value < INT32_MAX), (key, value)


def validator_required(name: str) -> list[str]:
    required: list[str] = schemas()[name].get("required", [])
    return required
