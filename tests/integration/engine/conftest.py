"""The run engine as a library: its parts built by hand over a migrated database on
each engine, the scripted model, a queue that only records, and a clock the test
moves. No HTTP, no sleeps."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from threadline.engine.events import InMemoryEventBus
from threadline.engine.executor import Executor
from threadline.engine.lifecycle import Lifecycle
from threadline.engine.sweeper import Sweeper
from threadline.models.scripted import ScriptedBackend
from threadline.queue.base import Execute, RunQueue
from threadline.schemas.assistant import CreateAssistantRequest
from threadline.schemas.run import CreateRunRequest
from threadline.schemas.thread import CreateThreadRequest
from threadline.services.assistants import AssistantService
from threadline.services.references import References
from threadline.services.runs import RunService
from threadline.services.threads import ThreadService
from threadline.settings import Settings
from threadline.storage import runs as store
from threadline.storage import tables
from threadline.storage.db import Database

PROJECT = "proj_engine"


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.at = time.time()

    def time(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


class RecordingQueue(RunQueue):
    """Executes nothing: records what is enqueued and aborted; ``stalled`` are the
    runs it reports a dead worker left (once each)."""

    def __init__(self) -> None:
        self.enqueued: list[str] = []
        self.aborted: list[str] = []
        self.stalled: list[str] = []

    async def start(self, execute: Execute) -> None:
        pass

    async def enqueue(self, run_id: str) -> None:
        self.enqueued.append(run_id)

    async def abort(self, run_id: str) -> bool:
        self.aborted.append(run_id)
        return False

    async def stop(self, grace: float) -> None:
        pass

    async def release_stalled(self) -> list[str]:
        stalled, self.stalled = self.stalled, []
        return stalled


@dataclass
class Kit:
    db: Database
    bus: InMemoryEventBus
    clock: ManualClock
    lifecycle: Lifecycle
    queue: RecordingQueue
    executor: Executor
    sweeper: Sweeper
    runs: RunService
    settings: Settings
    project: str = PROJECT
    made: list[str] = field(default_factory=list)

    def other_executor(self, worker_id: str) -> Executor:
        """A second worker on the same database and bus."""
        return Executor(self.db, self.lifecycle, self.executor.backend, self.settings, worker_id)

    async def new_run(self, *steps: Any, **run_fields: Any) -> dict[str, Any]:
        """A queued run on a new thread whose one user message scripts ``steps``
        (the scripted model's directive; none: it echoes)."""
        services = References()
        assistants = AssistantService(self.db, services)
        threads = ThreadService(self.db, services)
        assistant = await assistants.create(
            PROJECT, CreateAssistantRequest.model_validate({"model": "gpt-4o-mini"})
        )
        content = json.dumps({"scripted": list(steps)}) if steps else "Hello"
        thread = await threads.create(
            PROJECT,
            CreateThreadRequest.model_validate(
                {"messages": [{"role": "user", "content": content}]}
            ),
        )
        req = CreateRunRequest.model_validate({"assistant_id": assistant["id"], **run_fields})
        run = await self.runs.create(PROJECT, thread["id"], req)
        self.made.append(run["id"])
        return run

    async def row(self, run_id: str) -> Any:
        async with self.db.read() as conn:
            query = sa.select(tables.runs).where(tables.runs.c.id == run_id)
            return (await conn.execute(query)).one()

    async def status(self, run_id: str) -> str:
        return str((await self.row(run_id)).status)

    async def event_names(self, run_id: str) -> list[str]:
        return [name for name, _data in await self.events(run_id)]

    async def events(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The run's events so far: (name, data)."""
        found: list[tuple[str, dict[str, Any]]] = []
        if not await self.bus.last_seq(run_id):
            return found
        async for batch in self.bus.subscribe_batches(run_id):
            found.extend((e.name, e.data) for e in batch)
            if not await _more(self.bus, run_id, batch[-1].seq):
                return found
        return found

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return await store.steps_of(conn, run_id)

    async def messages(self, run_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return await store.run_messages(conn, run_id)


async def _more(bus: InMemoryEventBus, run_id: str, seen: int) -> bool:
    return await bus.last_seq(run_id) > seen


Handler = Callable[..., Any | Awaitable[Any]]


@pytest.fixture
async def kit(database_url: str, fast_path: bool, tmp_path: Path) -> AsyncIterator[Kit]:
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "database_url": database_url,
            "model_backend": "scripted",
            "sqlite_fast_path": fast_path,
        }
    )
    db = Database(settings.resolved_database_url, fast_path=settings.sqlite_fast_path)
    await db.migrate()
    bus = InMemoryEventBus()
    clock = ManualClock()
    lifecycle = Lifecycle(db, bus, clock)
    queue = RecordingQueue()
    backend = ScriptedBackend()
    executor = Executor(db, lifecycle, backend, settings, "wrk_test")
    refs = References()
    runs = RunService(
        db, refs, ThreadService(db, refs), lifecycle, queue, executor, backend, settings
    )
    try:
        yield Kit(
            db,
            bus,
            clock,
            lifecycle,
            queue,
            executor,
            Sweeper(db, lifecycle, queue),
            runs,
            settings,
        )
    finally:
        await bus.aclose()
        await backend.aclose()
        await db.dispose()
