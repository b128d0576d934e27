"""Validate wire objects against OpenAI's own OpenAPI document.

``assert_schema(obj, "RunObject")`` checks ``obj`` against the spec's
``#/components/schemas/RunObject``; ``assert_served(obj, name)`` against it with
the differences the server's own document declares (``api.openapi.DEVIATIONS``:
``null`` for an unset expiry, an empty list's ids…); ``assert_event(name, data)`` checks one
stream event against ``AssistantStreamEvent``. The schemas come from
``spec_schemas.json`` beside this module, derived from the spec by
``scripts/derive_spec_schemas.py`` (which names the spec's sha256 and commit, and
writes the 3.0 keyword ``nullable: true`` as "or null"). To check an object
against a schema the file lacks, add its name to that script's ``ROOTS`` and
derive the file again. Formats are not checked (``format: unixtime`` is an
integer, checked as such).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from scripts.derive_spec_schemas import REF_PREFIX, closure
from scripts.derive_spec_schemas import refs as refs_of
from threadline.api.openapi import with_deviations

SCHEMAS_PATH = Path(__file__).with_name("spec_schemas.json")
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


@lru_cache(maxsize=1)
def derived() -> dict[str, Any]:
    """The whole ``spec_schemas.json``: its ``source`` and its ``schemas``."""
    loaded: dict[str, Any] = json.loads(SCHEMAS_PATH.read_text())
    return loaded


def schemas() -> dict[str, Any]:
    """The spec's schemas the tests use, by component name (nullability normalised)."""
    found: dict[str, Any] = derived()["schemas"]
    return found


@lru_cache(maxsize=1)
def served_schemas() -> dict[str, Any]:
    """``schemas()`` with the server's declared deviations from them."""
    return with_deviations(schemas())


def _compile(root: dict[str, Any], among: dict[str, Any] | None = None) -> Any:
    """A validator for ``root`` carrying only the schemas it reaches (fast to build)."""
    reached = closure(schemas() if among is None else among, refs_of(root))
    document = {**root, "components": {"schemas": reached}}
    return jsonschema_rs.Draft202012Validator(document, validate_formats=False)


@lru_cache(maxsize=64)
def validator(name: str) -> Any:
    if name not in schemas():
        raise KeyError(
            f"{name} is not in {SCHEMAS_PATH.name}: add it to ROOTS in"
            " scripts/derive_spec_schemas.py and derive the file again"
        )
    return _compile({"$ref": f"{REF_PREFIX}{name}"})


@lru_cache(maxsize=64)
def served_validator(name: str) -> Any:
    validator(name)  # the same refusal for a name the file lacks
    return _compile({"$ref": f"{REF_PREFIX}{name}"}, served_schemas())


def assert_served(obj: Any, name: str) -> None:
    """``obj`` is valid against ``<name>`` as the server's own document declares it:
    OpenAI's schema and the deviations that document lists, nothing else."""
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}"
        for e in served_validator(name).iter_errors(obj)
    ]
    assert not errors, f"not a valid {name}: {errors[:5]}\n{json.dumps(obj)[:2000]}"


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
