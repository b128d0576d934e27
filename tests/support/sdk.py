"""Small helpers for tests that drive the server through the official SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest


def bad_request(call: Any) -> dict[str, Any]:
    """The error body of the 400 that ``call()`` must raise."""
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    body: dict[str, Any] = caught.value.body
    return body


def upload(client: openai.OpenAI, name: str, content: bytes) -> str:
    """The id of a new ``assistants`` file holding ``content``."""
    return client.files.create(file=(name, content), purpose="assistants").id
