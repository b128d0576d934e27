"""Time as the API shows it (integer Unix seconds), and the clock the engine reads,
injectable so that tests move time instead of sleeping."""

from __future__ import annotations

import time
from typing import Protocol


def now() -> int:
    return int(time.time())


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (leases compare these)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()


SYSTEM_CLOCK: Clock = SystemClock()


def stamp(clock: Clock) -> int:
    """``clock``'s time as the API shows it: integer Unix seconds."""
    return int(clock.time())
