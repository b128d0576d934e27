"""The run queue: hands queued runs to executors, and stops one on request; a
shared one hands out file ingestions too."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

Execute = Callable[[str], Awaitable[None]]
Ingest = Callable[[str, str, str], Awaitable[None]]
"""Ingest one file: (project id, vector store id, file id)."""


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
    ingests = False
    """Whether the queue also carries ingestion jobs (else each process ingests
    the files it finds waiting)."""

    @abstractmethod
    async def start(self, execute: Execute) -> None:
        """Begin handing runs to ``execute``."""

    @abstractmethod
    async def enqueue(self, run_id: str) -> None:
        """Ask for ``run_id`` to be executed (at least once)."""

    async def enqueue_in(self, conn: AsyncConnection, run_id: str) -> bool:
        """Ask for the new run ``run_id`` to be executed as part of ``conn``'s
        transaction, the one that stores it: its job exists once, and only once,
        the run does. False if this queue cannot (then ``enqueue`` after the
        commit)."""
        return False

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

    async def start_ingestion(self, ingest: Ingest, concurrency: int) -> None:
        """Begin handing ingestion jobs to ``ingest``, ``concurrency`` at once."""
        raise NotImplementedError("this queue carries no ingestion jobs")

    async def enqueue_ingestion(self, project_id: str, vector_store_id: str, file_id: str) -> None:
        """Ask for the file to be ingested by some worker (one job waits per file)."""
        raise NotImplementedError("this queue carries no ingestion jobs")

    async def stop_ingestion(self) -> None:  # noqa: B027 - optional hook
        """Take no more ingestion jobs and cancel running ones (their leases are
        handed back by the caller)."""
