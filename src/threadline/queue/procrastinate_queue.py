"""The ``RunQueue`` on procrastinate (PostgreSQL only): runs shared by every worker
process of a deployment.

One job per run turn, deferred with the run id as its queueing lock, so a run
waits in the queue at most once however many processes ask for it. A worker
executes a job by executing the run's turn; the database's lease (not the job)
says who may write the run, so a job that finds its run no longer queued does
nothing.

Cancel from any process: ``abort`` asks procrastinate to abort the run's running
job; the worker that runs it hears it at once (LISTEN/NOTIFY; polled as a
fallback) and cancels the turn's task, whose cancellation path finishes the
cancel or hands the run back. Workers beat a heartbeat; ``release_stalled``
closes the jobs of workers that stopped beating and names their runs for the
sweeper's rules (queue again, or fail after three attempts).

A worker stopping (SIGTERM) takes no new job, lets running turns finish for the
grace period, then cancels them: each hands its run back and queues it again.

PostgreSQL restarting: procrastinate's worker stops when its heartbeat, its
LISTEN connection or a fetch fails; it is started again (every second until the
database answers); procrastinate's pool checks its connections before use, so a
process rides out a restart of its database.

File ingestion goes through the same app: one job per waiting file (the file is
its queueing lock) on a queue of its own, executed by a worker of its own with the
ingestion concurrency, so ingestions never take a run's place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
from procrastinate import connector as procrastinate_connector
from procrastinate import jobs
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.worker import Worker
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.queue.base import Execute, Ingest, RunQueue

log = logging.getLogger("threadline.queue")

TASK = "threadline.run_turn"
QUEUE = "runs"
INGEST_TASK = "threadline.ingest"
INGEST_QUEUE = "ingestion"
_RESTART_SECONDS = 1.0
_LISTEN_WAIT_SECONDS = 5.0
_CHECK_AFTER_IDLE_SECONDS = 1.0
_SCHEMA_LOCK = 0x7468_726C  # advisory lock id: one process applies the schema
# procrastinate's own defer (its ``defer_jobs`` query: one row of its job type, the
# queueing lock set, no lock, no schedule), through the caller's connection.
_DEFER_IN = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW("
    "CAST(:queue AS varchar), CAST(:task AS varchar), 0, NULL, CAST(:queueing_lock AS text),"
    " CAST(CAST(:args AS text) AS jsonb), NULL)::procrastinate_job_to_defer_v1])"
)


def conninfo_of(database_url: str) -> str:
    """A libpq connection string from the SQLAlchemy URL of a PostgreSQL database."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("the procrastinate queue needs PostgreSQL (THREADLINE_DATABASE_URL)")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class _Worker(Worker):
    """procrastinate's worker, without a lost wake-up.

    Its fetch loop clears the new-job flag after every fetch, so the notification of
    a job deferred while a fetch was on its way (too late for that fetch to see the
    job) was cleared with it, and the job waited for the next poll (5 s): under
    concurrent runs, most of a run's time. Here a pass of the fetch loop that heard a
    notification is followed by another.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wake_ups = 0

    async def _handle_notification(self, *, channel: str, notification: jobs.Notification) -> None:
        if notification["type"] == "job_inserted":
            self._wake_ups += 1
        await super()._handle_notification(channel=channel, notification=notification)

    async def _fetch_and_process_jobs(self) -> None:
        while True:
            heard = self._wake_ups
            await super()._fetch_and_process_jobs()  # type: ignore[no-untyped-call]
            if self._wake_ups == heard or self._stop_event.is_set():
                return


def _pool(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool:
    """procrastinate's connection pool, its round trips cut from four a query to one.

    Each of procrastinate's queries is one statement (a function call), atomic by
    itself: its connections run in autocommit, with no BEGIN and COMMIT around it.
    And a connection is checked (an empty query) before use only after it sat idle
    for a second, as the engine's are: one that breaks in between (the database
    restarting) fails its query, and the worker that made it is started again."""
    returned: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
        weakref.WeakKeyDictionary()
    )

    async def reset(conn: psycopg.AsyncConnection[Any]) -> None:
        returned[conn] = time.monotonic()

    async def check(conn: psycopg.AsyncConnection[Any]) -> None:
        since = returned.get(conn)
        if since is None or time.monotonic() - since >= _CHECK_AFTER_IDLE_SECONDS:
            await psycopg_pool.AsyncConnectionPool.check_connection(conn)

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.set_autocommit(True)

    kwargs.update(check=check, reset=reset, configure=configure)
    return psycopg_pool.AsyncConnectionPool(**kwargs)


class _Connector(procrastinate.PsycopgConnector):
    """procrastinate's connector, with listeners that say when they listen.

    A job deferred before its worker's listener is up (the worker just started, or
    its listening connection broke and was opened again) was heard of only at the
    next poll (5 s), and so was an abort. Here a listener that begins listening
    wakes its worker for one fetch, as a notification would, and ``start`` waits
    for it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listening: list[asyncio.Event] = []

    def next_listener(self) -> asyncio.Event:
        """Set once the next listener to start listens."""
        event = asyncio.Event()
        self._listening.append(event)
        return event

    async def _loop_notify(
        self,
        on_notification: procrastinate_connector.Notify,
        connection: psycopg.AsyncConnection,
        timeout: float = procrastinate_connector.LISTEN_TIMEOUT,  # noqa: ASYNC109 - its signature
    ) -> None:
        # LISTEN is done: what was deferred before it is found by this fetch.
        await on_notification(channel="", payload=json.dumps({"type": "job_inserted"}))
        if self._listening:
            self._listening.pop(0).set()
        await super()._loop_notify(
            on_notification=on_notification, connection=connection, timeout=timeout
        )


class ProcrastinateQueue(RunQueue):
    ingests = True

    def __init__(
        self,
        database_url: str,
        *,
        concurrency: int,
        heartbeat_seconds: float = 10.0,
        stalled_after_seconds: float = 30.0,
        abort_poll_seconds: float = 5.0,
        pool_size: int = 10,
    ) -> None:
        self.conninfo = conninfo_of(database_url)
        self.concurrency = concurrency
        self.heartbeat_seconds = heartbeat_seconds
        self.stalled_after_seconds = stalled_after_seconds
        self.abort_poll_seconds = abort_poll_seconds
        self.connector = _Connector(
            pool_factory=_pool,
            conninfo=self.conninfo,
            min_size=1,
            max_size=pool_size,
        )
        self.app = procrastinate.App(connector=self.connector)
        self.app.task(name=TASK, queue=QUEUE)(self._turn)
        self.app.task(name=INGEST_TASK, queue=INGEST_QUEUE)(self._ingest_job)
        self._execute: Execute | None = None
        self._ingest: Ingest | None = None
        self._worker: asyncio.Task[None] | None = None
        self._jobs: Worker | None = None
        self._ingester: asyncio.Task[None] | None = None
        self._ingest_jobs: Worker | None = None
        self._opened = False
        self._stopping = False

    # --- life -------------------------------------------------------------------
    async def migrate(self) -> None:
        """Apply procrastinate's schema unless it is there (one process at a time)."""
        connecting = psycopg.AsyncConnection.connect(self.conninfo)
        async with await connecting as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cursor = await conn.execute("SELECT to_regclass('procrastinate_jobs')")
            row = await cursor.fetchone()
            if row is not None and row[0] is not None:
                return
            await conn.execute(procrastinate.schema.SchemaManager.get_schema())
        log.info("applied procrastinate's schema")

    async def open(self) -> None:
        if not self._opened:
            await self.app.open_async()
            self._opened = True

    async def start(self, execute: Execute) -> None:
        await self.open()
        self._execute = execute
        self._jobs = self._new_worker(QUEUE, self.concurrency)
        listening = self.connector.next_listener()
        self._worker = asyncio.create_task(self._keep_running(self._jobs), name="procrastinate")
        await _until_listening(listening)

    def _new_worker(self, queue: str, concurrency: int) -> Worker:
        return _Worker(
            self.app,
            queues=[queue],
            concurrency=concurrency,
            install_signal_handlers=False,
            update_heartbeat_interval=self.heartbeat_seconds,
            stalled_worker_timeout=self.stalled_after_seconds,
            abort_job_polling_interval=self.abort_poll_seconds,
            delete_jobs="successful",
        )

    async def _keep_running(self, worker: Worker) -> None:
        """Run procrastinate's worker until this queue stops; start it again when it
        stops by itself (its database connection broke)."""
        while not self._stopping:
            try:
                await worker.run()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._stopping:
                    log.warning("the queue's worker stopped (%s); starting it again", exc)
            else:
                if not self._stopping:
                    log.warning("the queue's worker stopped; starting it again")
            if not self._stopping:
                await asyncio.sleep(_RESTART_SECONDS)

    async def stop(self, grace: float) -> None:
        """Take no more jobs; ``grace`` seconds for running turns, then cancel them."""
        self._stopping = True
        worker = self._worker
        if worker is None:
            return
        assert self._jobs is not None
        await _stop_worker(self._jobs, worker, grace)
        self._worker = self._jobs = None

    async def start_ingestion(self, ingest: Ingest, concurrency: int) -> None:
        await self.open()
        self._ingest = ingest
        self._ingest_jobs = self._new_worker(INGEST_QUEUE, concurrency)
        listening = self.connector.next_listener()
        self._ingester = asyncio.create_task(
            self._keep_running(self._ingest_jobs), name="procrastinate-ingestion"
        )
        await _until_listening(listening)

    async def stop_ingestion(self) -> None:
        """No grace: a cancelled ingestion's lease is handed back, and another
        worker takes the file from its start."""
        self._stopping = True
        if self._ingester is not None and self._ingest_jobs is not None:
            await _stop_worker(self._ingest_jobs, self._ingester, 0)
        self._ingester = self._ingest_jobs = None

    async def aclose(self) -> None:
        if self._opened:
            await self.app.close_async()
            self._opened = False

    async def ping(self) -> None:
        if not await self.app.job_manager.check_connection_async():
            raise RuntimeError("procrastinate's schema is missing (run `threadline migrate`)")

    # --- jobs -------------------------------------------------------------------
    async def enqueue(self, run_id: str) -> None:
        await self.open()
        deferrer = self.app.configure_task(TASK, queueing_lock=run_id, queue=QUEUE)
        with contextlib.suppress(AlreadyEnqueued):
            await deferrer.defer_async(run_id=run_id)

    async def enqueue_in(self, conn: AsyncConnection, run_id: str) -> bool:
        """Defer the new run's job in the transaction that stores the run: one
        round trip there instead of a transaction of its own after the commit, and
        no moment when the run is stored with no job. (The run is new, so no job
        holds its queueing lock.) Workers hear of the job when it commits."""
        if conn.dialect.name != "postgresql":
            return False
        arguments = json.dumps({"run_id": run_id})
        await conn.execute(
            _DEFER_IN, {"queue": QUEUE, "task": TASK, "queueing_lock": run_id, "args": arguments}
        )
        return True

    async def enqueue_ingestion(self, project_id: str, vector_store_id: str, file_id: str) -> None:
        await self.open()
        deferrer = self.app.configure_task(
            INGEST_TASK, queueing_lock=f"{vector_store_id}/{file_id}", queue=INGEST_QUEUE
        )
        with contextlib.suppress(AlreadyEnqueued):
            await deferrer.defer_async(
                project_id=project_id, vector_store_id=vector_store_id, file_id=file_id
            )

    async def _ingest_job(self, project_id: str, vector_store_id: str, file_id: str) -> None:
        assert self._ingest is not None, "an ingestion job ran before ingestion started"
        await self._ingest(project_id, vector_store_id, file_id)

    async def _turn(self, run_id: str) -> None:
        assert self._execute is not None, "a job ran before the queue started"
        try:
            await self._execute(run_id)
        except asyncio.CancelledError:
            if self._stopping:
                # Stopped for a shutdown: the turn handed its run back; queue it again
                # for another worker (nothing happens if it is not queued).
                await asyncio.shield(self.enqueue(run_id))
            raise

    async def abort(self, run_id: str) -> bool:
        """Abort the run's running job, wherever it runs; drop a waiting one. True if
        a running job was asked to stop."""
        await self.open()
        manager = self.app.job_manager
        asked = False
        for status in ("doing", "todo"):
            for job in await manager.list_jobs_async(
                task=TASK, status=status, queueing_lock=run_id
            ):
                assert job.id is not None
                done = await manager.cancel_job_by_id_async(job.id, abort=status == "doing")
                asked = asked or (done and status == "doing")
        return asked

    async def release_stalled(self) -> list[str]:
        """Close the jobs of workers whose heartbeat stopped; their run ids. (A dead
        worker's ingestion jobs are closed too: their files' leases lapse and the
        ingestion sweep queues them again.)"""
        manager = self.app.job_manager
        run_ids: list[str] = []
        found = False
        for task in (TASK, INGEST_TASK):
            stalled = await manager.get_stalled_jobs(
                task_name=task, seconds_since_heartbeat=self.stalled_after_seconds
            )
            for job in stalled:
                assert job.id is not None
                await manager.finish_job_by_id_async(job.id, jobs.Status.FAILED, delete_job=False)
                if task == TASK:
                    run_ids.append(str(job.task_kwargs["run_id"]))
                found = True
        if found:
            await manager.prune_stalled_workers(self.stalled_after_seconds)
        return run_ids


async def _until_listening(listening: asyncio.Event) -> None:
    """Wait (a while) for a new worker to listen: cancels and new jobs are then
    heard at once. A database too slow to answer is not waited for: its worker
    polls, and is started again if it stops."""
    try:
        await asyncio.wait_for(listening.wait(), _LISTEN_WAIT_SECONDS)
    except TimeoutError:
        log.warning("the queue's worker is not listening yet; going on")


async def _stop_worker(worker: Worker, running: asyncio.Task[None], grace: float) -> None:
    worker.shutdown_graceful_timeout = grace
    worker.stop()  # type: ignore[no-untyped-call]
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(running, grace + 10)
