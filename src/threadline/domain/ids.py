"""Object ids with OpenAI's prefixes (``asst_``, ``thread_``, ``msg_``, ``run_``…)."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

PREFIXES: dict[str, str] = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "file": "file-",
    "vector_store": "vs_",
    "tool_call": "call_",
    "project": "proj_",
    "key": "sk-tl-",
}


def new_id(kind: str, length: int = 24) -> str:
    """A fresh random id for an object of ``kind`` (a key of ``PREFIXES``)."""
    return PREFIXES[kind] + "".join(secrets.choice(_ALPHABET) for _ in range(length))
