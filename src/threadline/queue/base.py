"""The run queue: hands queued runs to executors, and stops one on request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

Execute = Callable[[str], Awaitable[None]]


class RunQueue(ABC):
    @abstractmethod
    async def start(self, execute: Execute) -> None:
        """Begin handing runs to ``execute``."""

    @abstractmethod
    async def enqueue(self, run_id: str) -> None:
        """Ask for ``run_id`` to be executed (at least once)."""

    @abstractmethod
    async def abort(self, run_id: str) -> bool:
        """Stop the execution of ``run_id`` if it is running here; True if it was."""

    @abstractmethod
    async def stop(self, grace: float) -> None:
        """Stop taking runs; give executions ``grace`` seconds, then cancel them."""
