"""What OpenAI's spec says each of its operations that threadline serves answers
with: ``openai_responses.json`` beside this module, derived from the spec by
``scripts/derive_spec_schemas.py --served`` (which names the spec's sha256 and
commit, and writes the 3.0 keyword ``nullable: true`` as "or null").

The server's own document declares these, not schemas generated from the wire
models here: the spec is the contract, and a copy derived from it cannot drift
from it. That the server sends what they say is checked by the tests (every
response schemathesis gets, and the objects the SDK tests read)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

FILE = "openai_responses.json"


@lru_cache(maxsize=1)
def _derived() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        resources.files("threadline.schemas").joinpath(FILE).read_text(encoding="utf-8")
    )
    return loaded


def operations() -> dict[str, dict[str, Any]]:
    """Each operation's ``200`` content (media type → ``{"schema": …}``), by ``operationId``."""
    found: dict[str, dict[str, Any]] = _derived()["operations"]
    return found


def schemas() -> dict[str, Any]:
    """The component schemas those reach, by name."""
    found: dict[str, Any] = _derived()["schemas"]
    return found


def source() -> dict[str, Any]:
    """The spec they were derived from: file, sha256, version, commit."""
    found: dict[str, Any] = _derived()["source"]
    return found
