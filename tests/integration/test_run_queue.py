"""The ``RunQueue`` contract, on each implementation: in this process, and on
procrastinate (a fresh PostgreSQL database per test, its schema applied by
``migrate``). Then what only a shared queue does: several processes (queues on
one database) enqueue, execute and abort the same runs, and a worker whose
heartbeat stopped has its runs named for the sweeper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.servers import postgres_database
from threadline.queue.base import RunQueue
from threadline.queue.inprocess import InProcessQueue
from threadline.queue.procrastinate_queue import ProcrastinateQueue, conninfo_of
from threadline.storage.db import normalise_url

MakeQueue = Callable[[], Awaitable[RunQueue]]


class Recorder:
    """An ``execute`` whose executions run until released, and say how they ended."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.changed = asyncio.Condition()

    def gate(self, run_id: str) -> asyncio.Event:
        return self.gates.setdefault(run_id, asyncio.Event())

    async def execute(self, run_id: str) -> None:
        async with self.changed:
            self.started.append(run_id)
            self.changed.notify_all()
        try:
            await self.gate(run_id).wait()
        except asyncio.CancelledError:
            async with self.changed:
                self.cancelled.append(run_id)
                self.changed.notify_all()
            raise

    async def until(self, check: Callable[[], bool], within: float = 10) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(check), within)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """One PostgreSQL database for the module; each test empties the job tables."""
    yield from postgres_database()


@pytest.fixture(params=["inprocess", "procrastinate"])
async def make_queue(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[MakeQueue]:
    """Queues as processes of one deployment see them (on procrastinate, each call
    is another process on the same database); all stopped and closed after."""
    made: list[RunQueue] = []
    url = ""
    if request.param == "procrastinate":
        url = normalise_url(pg_url)
        first = ProcrastinateQueue(url, concurrency=4, heartbeat_seconds=0.5)
        await first.migrate()
        await first.migrate()  # applied once: a second migrate finds it there
        await _empty(url)

    async def make() -> RunQueue:
        queue: RunQueue
        if request.param == "inprocess":
            queue = InProcessQueue(4)
        else:
            queue = ProcrastinateQueue(
                url, concurrency=4, heartbeat_seconds=0.5, stalled_after_seconds=2
            )
            await queue.open()
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.stop(0.5)
        await queue.aclose()


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(conninfo_of(url))
    try:
        await conn.execute("TRUNCATE procrastinate_jobs, procrastinate_workers CASCADE")
    finally:
        await conn.close()


async def test_an_enqueued_run_executes_once_however_often_it_is_asked_for(
    make_queue: MakeQueue,
) -> None:
    queue, recorder = await make_queue(), Recorder()
    for _ in range(3):
        await queue.enqueue("run_a")  # waiting: the same run is queued once
    await queue.enqueue("run_b")
    await queue.start(recorder.execute)
    await recorder.until(lambda: len(recorder.started) == 2)
    recorder.gate("run_a").set()
    recorder.gate("run_b").set()
    await queue.enqueue("run_c")
    recorder.gate("run_c").set()
    await recorder.until(lambda: "run_c" in recorder.started)
    assert sorted(recorder.started) == ["run_a", "run_b", "run_c"]


async def test_abort_cancels_the_running_execution(make_queue: MakeQueue) -> None:
    queue, recorder = await make_queue(), Recorder()
    await queue.start(recorder.execute)
    await queue.enqueue("run_a")
    await recorder.until(lambda: recorder.started == ["run_a"])
    assert await queue.abort("run_a") is True
    await recorder.until(lambda: recorder.cancelled == ["run_a"], within=2)
    assert await queue.abort("run_unknown") is False


async def test_stop_gives_running_executions_the_grace_then_cancels(
    make_queue: MakeQueue,
) -> None:
    queue, recorder = await make_queue(), Recorder()
    await queue.start(recorder.execute)
    await queue.enqueue("run_a")
    await recorder.until(lambda: recorder.started == ["run_a"])
    started = time.monotonic()
    await queue.stop(0.3)
    assert recorder.cancelled == ["run_a"]
    assert 0.25 <= time.monotonic() - started < 5


@pytest.mark.postgres
async def test_a_run_enqueued_by_one_process_is_executed_by_another_and_aborted_from_a_third(
    pg_url: str,
) -> None:
    url = normalise_url(pg_url)
    api = ProcrastinateQueue(url, concurrency=2)
    other_api = ProcrastinateQueue(url, concurrency=2)
    worker = ProcrastinateQueue(url, concurrency=2, abort_poll_seconds=30)
    await api.migrate()
    await _empty(url)
    recorder = Recorder()
    try:
        await api.open()
        await other_api.open()
        await worker.start(recorder.execute)
        await api.enqueue("run_x")
        await recorder.until(lambda: recorder.started == ["run_x"])
        asked = time.monotonic()
        assert await other_api.abort("run_x") is True
        # Heard at once (LISTEN/NOTIFY): not at the 30 s poll.
        await recorder.until(lambda: recorder.cancelled == ["run_x"], within=1)
        assert time.monotonic() - asked < 1
        # A run aborted while it waits is dropped: no worker executes it.
        await worker.stop(0.5)
        await api.enqueue("run_y")
        assert await other_api.abort("run_y") is False
        assert await api.release_stalled() == []
    finally:
        for queue in (api, other_api, worker):
            await queue.stop(0.5)
            await queue.aclose()


@pytest.mark.postgres
async def test_the_runs_of_a_worker_whose_heartbeat_stopped_are_named_once(pg_url: str) -> None:
    url = normalise_url(pg_url)
    dead = ProcrastinateQueue(url, concurrency=2, heartbeat_seconds=0.2)
    sweeper = ProcrastinateQueue(url, concurrency=2, stalled_after_seconds=2)
    await dead.migrate()
    await _empty(url)
    recorder = Recorder()
    try:
        await dead.start(recorder.execute)
        await sweeper.open()
        await dead.enqueue("run_s")
        await recorder.until(lambda: recorder.started == ["run_s"])
        assert await sweeper.release_stalled() == []  # its heartbeat is fresh
        # What a kill -9 leaves: a worker row whose heartbeat is old, its job `doing`.
        conn = await asyncpg.connect(conninfo_of(url))
        try:
            await conn.execute(
                "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"
            )
        finally:
            await conn.close()
        assert await sweeper.release_stalled() == ["run_s"]
        assert await sweeper.release_stalled() == []  # its job is closed
    finally:
        recorder.gate("run_s").set()
        for queue in (dead, sweeper):
            await queue.stop(0.5)
            await queue.aclose()


async def test_a_run_enqueued_while_the_worker_fetches_is_not_left_for_the_poll(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job deferred (and notified) while the worker's fetch is on its way, too late
    for that fetch to see it, starts at once, not at the next poll (5 s)."""
    url = normalise_url(pg_url)
    worker = ProcrastinateQueue(url, concurrency=4)
    api = ProcrastinateQueue(url, concurrency=4)
    await worker.migrate()
    await _empty(url)
    recorder = Recorder()
    manager = worker.app.job_manager
    fetch = manager.fetch_job
    fetched: list[object] = []
    deferred_at: list[float] = []

    async def fetch_then_defer(**kwargs: Any) -> Any:
        job = await fetch(**kwargs)
        if job is None and fetched and not deferred_at:
            # The empty fetch after run_warm's: run_late goes in while it is on its way.
            await api.enqueue("run_late")
            deferred_at.append(time.monotonic())
            flag = worker._jobs._new_job_event  # type: ignore[union-attr]
            for _ in range(200):  # until the notification has reached the worker
                if flag.is_set():
                    break
                await asyncio.sleep(0.01)
            assert flag.is_set()
        fetched.append(job)
        return job

    monkeypatch.setattr(manager, "fetch_job", fetch_then_defer)
    try:
        await api.open()
        await worker.start(recorder.execute)
        await api.enqueue("run_warm")
        await recorder.until(lambda: "run_late" in recorder.started, within=10)
        assert time.monotonic() - deferred_at[0] < 2.5
    finally:
        for run_id in ("run_warm", "run_late"):
            recorder.gate(run_id).set()
        for queue in (worker, api):
            await queue.stop(0.5)
            await queue.aclose()


@pytest.mark.postgres
async def test_a_run_deferred_in_its_creating_transaction_has_a_job_once_that_commits(
    pg_url: str,
) -> None:
    """The API's path for a new run: its job is written by the transaction that
    stores the run, so a rolled-back create leaves no job, and a committed one is
    executed by a worker, once."""
    url = normalise_url(pg_url)
    api = ProcrastinateQueue(url, concurrency=1)
    worker = ProcrastinateQueue(url, concurrency=2)
    await api.migrate()
    await _empty(url)
    engine = create_async_engine(url)
    recorder = Recorder()
    try:
        await worker.start(recorder.execute)
        async with engine.connect() as conn:
            transaction = await conn.begin()
            assert await api.enqueue_in(conn, "run_rolled_back") is True
            await transaction.rollback()
        async with engine.begin() as conn:
            assert await api.enqueue_in(conn, "run_kept") is True
            # Not visible to a worker until the commit.
            await asyncio.sleep(0.3)
            assert recorder.started == []
        await recorder.until(lambda: recorder.started == ["run_kept"], within=5)
        recorder.gate("run_kept").set()
        await asyncio.sleep(0.5)
        assert recorder.started == ["run_kept"]
        conn_ = await asyncpg.connect(conninfo_of(url))
        try:
            locks = await conn_.fetch("SELECT queueing_lock FROM procrastinate_jobs")
        finally:
            await conn_.close()
        assert "run_rolled_back" not in {row["queueing_lock"] for row in locks}
    finally:
        await engine.dispose()
        for queue in (api, worker):
            await queue.stop(0.5)
            await queue.aclose()


async def test_a_queue_that_cannot_defer_in_a_transaction_says_so() -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    try:
        async with engine.begin() as conn:
            assert await InProcessQueue(1).enqueue_in(conn, "run_a") is False
    finally:
        await engine.dispose()
