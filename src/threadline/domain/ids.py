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
    "upload": "upload_",
    "upload_part": "part_",
    "vector_store": "vs_",
    "vector_store_file_batch": "vsfb_",
    "tool_call": "call_",
    "project": "proj_",
    "key": "sk-tl-",
}


def new_id(kind: str, length: int = 24) -> str:
    """A fresh random id for an object of ``kind`` (a key of ``PREFIXES``).

    The letters are the base-62 digits of one draw from the OS's random source,
    wide enough (256 bits per 24 letters) that the reduction's bias is nil: a
    draw per letter costs seven times as much, and every run makes several ids."""
    number = int.from_bytes(secrets.token_bytes(max(32, length * 4 // 3)), "big")
    letters = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        letters.append(_ALPHABET[digit])
    return PREFIXES[kind] + "".join(letters)
