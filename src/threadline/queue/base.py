"""The run queue: hands queued runs to executors, and stops one on request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

Execute = Callable[[str], Awaitable[None]]


class Slot(ABC):
    """A free execution slot, taken before a run is claimed in its creating
    transaction; once that commits, ``start`` executes it there."""

    @abstractmethod
    def start(self, run_id: str, execution: Callable[[], Awaitable[None]]) -> None:
        """Execute the claimed run in this slot."""

    @abstractmethod
    def release(self) -> None:
        """Give the slot back unused (the claim was rolled back)."""


class RunQueue(ABC):
    @abstractmethod
    async def start(self, execute: Execute) -> None:
        """Begin handing runs to ``execute``."""

    @abstractmethod
    async def enqueue(self, run_id: str) -> None:
        """Ask for ``run_id`` to be executed (at least once)."""

    def reserve(self) -> Slot | None:
        """A slot to execute a new run in this process at once, if one is free and
        nothing waits before it; ``None`` otherwise (the run is enqueued)."""
        return None

    @abstractmethod
    async def abort(self, run_id: str) -> bool:
        """Stop the execution of ``run_id`` if it is running here; True if it was."""

    @abstractmethod
    async def stop(self, grace: float) -> None:
        """Stop taking runs; give executions ``grace`` seconds, then cancel them."""

    async def migrate(self) -> None:  # noqa: B027 - optional hook
        """Bring the queue's own storage up to date (``threadline migrate``)."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect, to enqueue and abort (a process that does not execute runs too)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections (after ``stop``)."""

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise if the queue cannot be reached."""

    async def release_stalled(self) -> list[str]:
        """Runs whose executions a dead worker left (found by heartbeat), their
        executions closed; for the sweeper's rules."""
        return []
