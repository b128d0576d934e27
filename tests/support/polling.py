"""Waiting on a condition that other processes make true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    *,
    log: Callable[[], str] | None = None,
    every: float = 0.1,
) -> T:
    """``check()``'s first truthy value, polled every ``every`` s for ``timeout``
    seconds; past that an ``AssertionError`` naming ``what``, followed by ``log()``
    (what the processes involved wrote) when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = "" if log is None else f"\n{log()}"
            raise AssertionError(f"timed out waiting for {what}{detail}")
        time.sleep(every)
