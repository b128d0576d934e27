"""Scale-out on PostgreSQL + Redis: two API processes (``threadline serve
--no-worker``) and two workers (``threadline worker``) as real subprocesses, one
procrastinate queue and one Redis event bus between them.

A run created through one API process is executed by a worker and streamed from
the other API process (live, and again after a ``Last-Event-ID``); a cancel sent
to the other API process stops the model call on the worker at once; a worker's
SIGTERM hands its turns to the other; a client whose API process is killed
resumes on the other and misses nothing; a worker killed with ``kill -9`` mid-run
under 100 concurrent runs leaves no run stuck: each resumes on the other worker
and completes, within 30 s of the kill, with exactly one assistant message, the
one its stream delivered.

Failures of what the processes share, on a Redis and a PostgreSQL of the module's
own (the machine's are never restarted): Redis killed and started again empty
mid-run (streams end with an ``error`` event instead of hanging, runs complete),
Redis restarted with its data (streams resume), PostgreSQL restarted mid-run (runs
pause and recover, nothing half-written, the workers take new runs after it).
File ingestion goes through the queue: an API process ingests nothing, a worker
killed mid-ingestion has its file taken over by the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import openai
import pytest

from tests.support.polling import wait_until
from tests.support.private_servers import (
    PrivatePostgres,
    PrivateRedis,
    private_postgres,
    private_redis,
)
from threadline.testing import free_port

pytestmark = pytest.mark.postgres

KEY = "sk-scale-out-0000000000000000"
THREADLINE = Path(sys.executable).with_name("threadline")
PUBLISH_PATIENCE = 4.0  # seconds a publisher waits for an unreachable Redis
T = TypeVar("T")


class Proc:
    """One ``threadline`` process of the cluster (``serve --no-worker`` or ``worker``)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.port = free_port() if args[0] == "serve" else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/v1"

    def start(self) -> None:
        args = [*self.args, "--port", str(self.port)] if self.port else self.args
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(THREADLINE), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited at start:\n{self.log()}")
            if self.port is None:
                return self.log_path.read_text().count(" started\n") >= self.starts
            try:
                return httpx.get(self.base + "/readyz", timeout=1).is_success
            except httpx.TransportError:
                return False

        wait_for(f"{self.name} to be ready", ready, timeout, self)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.whole_log()[-5000:]

    def whole_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for(what: str, check: Callable[[], T | None], timeout: float, *procs: Proc) -> T:
    return wait_until(
        what, check, timeout, log=lambda: "\n".join(f"--- {p.name} ---\n{p.log()}" for p in procs)
    )


@dataclass
class Cluster:
    apis: list[Proc]
    workers: list[Proc]
    redis: PrivateRedis
    postgres: PrivatePostgres

    @property
    def procs(self) -> list[Proc]:
        return [*self.apis, *self.workers]

    def sdk(self, api: int) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.apis[api].url, api_key=KEY, max_retries=0)

    def http(self, api: int) -> httpx.Client:
        return httpx.Client(
            base_url=self.apis[api].url,
            headers={"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"},
            timeout=30,
        )

    def revive(self) -> None:
        """Start again any process a failed test left dead."""
        for proc in self.procs:
            if proc.proc is None or proc.proc.poll() is not None:
                proc.start()
                proc.wait_ready()

    def ready(self) -> bool:
        """Every API process answers ``/readyz`` with 200."""
        try:
            return all(httpx.get(p.base + "/readyz", timeout=3).is_success for p in self.apis)
        except httpx.TransportError:
            return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    log_dir = tmp_path_factory.mktemp("cluster")
    with private_redis() as redis, private_postgres() as postgres:
        database = asyncio.run(_create_database(postgres.admin_url))
        env = os.environ | {
            "THREADLINE_DATA_DIR": str(log_dir),
            "THREADLINE_DATABASE_URL": postgres.database_url(database),
            "THREADLINE_API_KEYS": KEY,
            "THREADLINE_MODEL_BACKEND": "scripted",
            "THREADLINE_EMBEDDER": "hash",
            "THREADLINE_QUEUE": "procrastinate",
            "THREADLINE_REDIS_URL": redis.url,
            "THREADLINE_EVENT_PUBLISH_PATIENCE_SECONDS": str(PUBLISH_PATIENCE),
            "THREADLINE_RUN_LEASE_SECONDS": "10",
            "THREADLINE_INGEST_LEASE_SECONDS": "3",
            "THREADLINE_SWEEP_INTERVAL_SECONDS": "0.5",
            "THREADLINE_QUEUE_HEARTBEAT_SECONDS": "1",
            "THREADLINE_QUEUE_STALLED_SECONDS": "4",
            "THREADLINE_WORKER_CONCURRENCY": "100",
            "THREADLINE_WORKER_GRACE_SECONDS": "1",
            "THREADLINE_LOG_LEVEL": "info",
        }
        migrate = subprocess.run(
            [str(THREADLINE), "migrate"], env=env, capture_output=True, timeout=60, check=False
        )
        assert migrate.returncode == 0, migrate.stderr.decode()
        cluster = Cluster(
            apis=[Proc(f"api{i}", ["serve", "--no-worker"], env, log_dir) for i in range(2)],
            workers=[Proc(f"worker{i}", ["worker"], env, log_dir) for i in range(2)],
            redis=redis,
            postgres=postgres,
        )
        try:
            for proc in cluster.procs:
                proc.start()
            for proc in cluster.procs:
                proc.wait_ready()
            yield cluster
        finally:
            for proc in cluster.procs:
                proc.stop()


async def _create_database(admin_url: str) -> str:
    name = "threadline"
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


def script(text: str, **options: Any) -> str:
    return json.dumps({"scripted": [{"text": text, **options}]})


def read_stream(
    http: httpx.Client, thread_id: str, run_id: str, after: int
) -> list[tuple[int, str, dict[str, Any]]]:
    """The run's events after ``after`` (as ``Last-Event-ID``), until ``done``."""
    events: list[tuple[int, str, dict[str, Any]]] = []
    seq, name = 0, ""
    with http.stream(
        "GET", f"/threads/{thread_id}/runs/{run_id}/events", headers={"Last-Event-ID": str(after)}
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                if name == "done":
                    return events
                events.append((seq, name, json.loads(line[6:])))
    raise AssertionError(f"the stream ended without `done`: {events}")


def read_into(
    seen: list[tuple[int, str, dict[str, Any]]],
    http: httpx.Client,
    path: str,
    after_events: int,
    then: Callable[[], None],
) -> None:
    """Read a run's stream from the start into ``seen``; once ``after_events`` have
    come and the latest is a delta, call ``then`` and read on (until it breaks)."""
    seq, name, called = 0, "", False
    with http.stream("GET", path, headers={"Last-Event-ID": "0"}) as response:
        for line in response.iter_lines():
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                seen.append((seq, name, json.loads(line[6:])))
                if not called and name == "thread.message.delta" and len(seen) >= after_events:
                    then()
                    called = True


def assistant_texts(sdk: openai.OpenAI, thread_id: str) -> list[str]:
    messages = sdk.beta.threads.messages.list(thread_id, order="asc")
    return [
        "".join(part.text.value for part in m.content if part.type == "text")
        for m in messages.data
        if m.role == "assistant"
    ]


def test_a_run_made_on_one_api_process_streams_from_the_other(cluster: Cluster) -> None:
    text = " ".join(f"word{n}" for n in range(12))
    with cluster.sdk(0) as maker, cluster.sdk(1) as reader, cluster.http(1) as http:
        assistant = maker.beta.assistants.create(model="gpt-4o")
        thread = maker.beta.threads.create(
            messages=[{"role": "user", "content": script(text, chunks=12, token_delay=0.1)}]
        )
        run = maker.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
        events = read_stream(http, thread.id, run.id, 0)
        names = [name for _, name, _ in events]
        assert names[:2] == ["thread.run.created", "thread.run.queued"]
        assert "thread.run.in_progress" in names
        assert names[-1] == "thread.run.completed"
        # One sequence, whichever process published: the API its first events, the
        # worker the rest.
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
        streamed = "".join(
            part["text"]["value"]
            for _, name, data in events
            if name == "thread.message.delta"
            for part in data["delta"]["content"]
        )
        assert streamed == text
        assert assistant_texts(reader, thread.id) == [text]
        # Resumed elsewhere after a cursor: exactly the rest.
        with cluster.http(0) as other:
            assert read_stream(other, thread.id, run.id, 5) == events[5:]


def test_a_cancel_on_the_other_api_process_stops_the_worker_at_once(cluster: Cluster) -> None:
    with cluster.sdk(0) as maker, cluster.sdk(1) as canceller:
        assistant = maker.beta.assistants.create(model="gpt-4o")
        thread = maker.beta.threads.create(
            messages=[{"role": "user", "content": json.dumps({"scripted": [{"hang": True}]})}]
        )
        run = maker.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
        wait_for(
            "the run to start",
            lambda: (
                canceller.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status
                == "in_progress"
            ),
            15,
            *cluster.procs,
        )
        asked = time.monotonic()
        assert canceller.beta.threads.runs.cancel(run.id, thread_id=thread.id).status in (
            "cancelling",
            "cancelled",
        )
        wait_for(
            "the cancel to finish",
            lambda: (
                maker.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "cancelled"
            ),
            5,
            *cluster.procs,
        )
        took = time.monotonic() - asked
        # Not the next lease renewal (every 3.3 s here) nor the sweeper: the worker heard it.
        assert took < 1.0, f"the cancel took {took:.2f} s"


def slow_runs(
    sdk: openai.OpenAI, count: int, tag: str, *, chunks: int = 20, token_delay: float = 0.25
) -> tuple[list[Any], dict[str, str]]:
    """``count`` runs replying ``chunks`` chunks ``token_delay`` s apart (5 s by
    default), made 8 at a time, and their texts by thread."""
    assistant = sdk.beta.assistants.create(model="gpt-4o")
    texts = [" ".join(f"{tag}{i}w{n}" for n in range(chunks)) for i in range(count)]

    def make(text: str) -> Any:
        content = script(text, chunks=chunks, token_delay=token_delay)
        return sdk.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": content}]}
        )

    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(make, texts))
    return runs, {run.thread_id: text for run, text in zip(runs, texts, strict=True)}


class Streams:
    """The streams of ``runs`` from the start, read at once in a thread of their
    own (one connection each, alternately on each API process), each until its
    ``done`` or until its connection breaks."""

    def __init__(self, cluster: Cluster, runs: list[Any]) -> None:
        self.runs = runs
        self.urls = [api.url for api in cluster.apis]
        self.events: dict[str, list[tuple[int, str, dict[str, Any]]]] = {r.id: [] for r in runs}
        self.ended: dict[str, str] = {}  # run id: "done", or why the stream broke
        self.thread = threading.Thread(target=asyncio.run, args=(self._all(),), daemon=True)
        self.thread.start()

    async def _all(self) -> None:
        headers = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
        limits = httpx.Limits(max_connections=len(self.runs) + 10)
        timeout = httpx.Timeout(10, read=120)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) as client:
            await asyncio.gather(*(self._read(client, i, run) for i, run in enumerate(self.runs)))

    async def _read(self, client: httpx.AsyncClient, i: int, run: Any) -> None:
        url = f"{self.urls[i % len(self.urls)]}/threads/{run.thread_id}/runs/{run.id}/events"
        seen = self.events[run.id]
        seq, name = 0, ""
        try:
            async with client.stream("GET", url, headers={"Last-Event-ID": "0"}) as response:
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        seq = int(line[4:])
                    elif line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        if name == "done":
                            self.ended[run.id] = "done"
                            return
                        seen.append((seq, name, json.loads(line[6:])))
            self.ended[run.id] = "the stream ended without `done`"
        except httpx.HTTPError as exc:
            self.ended[run.id] = f"the stream broke: {exc!r}"

    def deltas(self, run_id: str) -> int:
        return sum(name == "thread.message.delta" for _, name, _ in self.events[run_id])

    def all_ended(self) -> bool:
        return len(self.ended) == len(self.runs)

    def text(self, run_id: str, message_id: str) -> str:
        """What the stream delivered of the message ``message_id``."""
        return "".join(
            part["text"]["value"]
            for _, name, data in self.events[run_id]
            if name == "thread.message.delta" and data["id"] == message_id
            for part in data["delta"]["content"]
        )


def all_status(sdk: openai.OpenAI, runs: list[Any], status: str) -> Callable[[], bool]:
    """A check for ``wait_for``: every one of ``runs`` has ``status`` now."""
    return lambda: all(
        sdk.beta.threads.runs.retrieve(r.id, thread_id=r.thread_id).status == status for r in runs
    )


def test_sigterm_of_a_worker_hands_its_turns_to_the_other(cluster: Cluster) -> None:
    other, stopping = cluster.workers
    # Every run on the worker that will stop: the other is down while they start.
    other.stop()
    with cluster.sdk(0) as sdk:
        runs, texts = slow_runs(sdk, 4, "t")
        wait_for(
            "every run to be in progress",
            all_status(sdk, runs, "in_progress"),
            20,
            *cluster.procs,
        )
        other.start()
        other.wait_ready()
        assert stopping.proc is not None
        stopping.proc.send_signal(signal.SIGTERM)
        # The grace is 1 s here: what is not done by then is handed back, at once.
        assert stopping.proc.wait(15) == 0, stopping.log()
        ended = wait_for(
            "every run to finish on the other worker",
            all_status(sdk, runs, "completed"),
            30,
            *cluster.procs,
        )
        assert ended
        for run in runs:
            assert assistant_texts(sdk, run.thread_id) == [texts[run.thread_id]]
    # Handed back, not found lost by a sweeper.
    assert "lost its worker" not in other.log()
    stopping.start()
    stopping.wait_ready()


def test_a_client_whose_api_process_dies_resumes_on_the_other_and_misses_nothing(
    cluster: Cluster,
) -> None:
    dying = cluster.apis[1]
    with cluster.sdk(0) as sdk:
        (run,), texts = slow_runs(sdk, 1, "a")
    seen: list[tuple[int, str, dict[str, Any]]] = []
    path = f"/threads/{run.thread_id}/runs/{run.id}/events"
    with cluster.http(1) as http, pytest.raises(httpx.TransportError):
        read_into(seen, http, path, after_events=8, then=dying.kill)  # mid-stream, mid-reply
    assert seen
    with cluster.http(0) as other:
        rest = read_stream(other, run.thread_id, run.id, seen[-1][0])
        whole = read_stream(other, run.thread_id, run.id, 0)
    assert seen + rest == whole  # nothing missed, nothing twice
    assert whole[-1][1] == "thread.run.completed"
    streamed = "".join(
        part["text"]["value"]
        for _, name, data in whole
        if name == "thread.message.delta"
        for part in data["delta"]["content"]
    )
    assert streamed == texts[run.thread_id]
    dying.start()
    dying.wait_ready()


def assistant_messages(sdk: openai.OpenAI, thread_id: str) -> list[tuple[str, str, str]]:
    """(id, status, text) of the thread's assistant messages, oldest first."""
    messages = sdk.beta.threads.messages.list(thread_id, order="asc")
    return [
        (m.id, m.status, "".join(part.text.value for part in m.content if part.type == "text"))
        for m in messages.data
        if m.role == "assistant"
    ]


def test_kill_9_of_a_worker_under_100_concurrent_runs_leaves_none_stuck_or_doubled(
    cluster: Cluster,
) -> None:
    cluster.revive()
    with cluster.sdk(0) as sdk:
        runs, texts = slow_runs(sdk, 100, "k", chunks=20, token_delay=0.35)
        streams = Streams(cluster, runs)
        # Mid-run: every run has begun to reply (most are far from done).
        wait_until(
            "every run to stream its reply",
            lambda: all(streams.deltas(r.id) >= 1 for r in runs),
            60,
            every=0.2,
        )
        cluster.workers[0].kill()
        killed = time.monotonic()
        wait_until("every stream to end", streams.all_ended, 30, every=0.2)
        assert time.monotonic() - killed < 30
        assert set(streams.ended.values()) == {"done"}
        for run in runs:
            ended = sdk.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
            assert ended.status == "completed", ended
            [(message_id, status, text)] = assistant_messages(sdk, run.thread_id)
            assert status == "completed"
            assert text == texts[run.thread_id]  # exactly one, whole
            assert streams.text(run.id, message_id) == text  # what the stream delivered
            assert streams.events[run.id][-1][1] == "thread.run.completed"
    # Some runs were the dead worker's: the other took them over.
    assert "lost its worker" in "".join(w.whole_log() for w in cluster.workers[1:])
    # The API processes never failed a request. (A worker's log has the traceback
    # procrastinate writes for each aborted job: the cancel test's.)
    for proc in cluster.apis:
        assert "Traceback" not in proc.whole_log(), proc.log()
    cluster.workers[0].start()
    cluster.workers[0].wait_ready()


def test_redis_restarted_empty_mid_run_ends_streams_with_an_error_and_runs_complete(
    cluster: Cluster,
) -> None:
    cluster.revive()
    with cluster.sdk(1) as sdk:
        runs, texts = slow_runs(sdk, 4, "r")
        streams = Streams(cluster, runs)
        wait_until("every run to stream", lambda: all(streams.deltas(r.id) >= 3 for r in runs), 30)
        cluster.redis.kill()  # what it held is gone with it
        cluster.redis.start()
        # Never a hang: each stream ends, with an error saying what happened.
        wait_until("every stream to end", streams.all_ended, 20)
        assert set(streams.ended.values()) == {"done"}
        for run in runs:
            name, data = streams.events[run.id][-1][1:]
            assert name == "error"
            assert data["code"] == "server_error"
            assert "event stream was lost" in data["message"]
        wait_for("every run to complete", all_status(sdk, runs, "completed"), 30, *cluster.procs)
        for run in runs:
            [(_, status, text)] = assistant_messages(sdk, run.thread_id)
            assert status == "completed"
            assert text == texts[run.thread_id]
        # The client can read the run again, and its stream again: it ends.
        with cluster.http(0) as http:
            again = read_stream(http, runs[0].thread_id, runs[0].id, 0)
        assert again[-1][1] == "thread.run.completed"


def test_redis_restarted_with_its_data_mid_run_resumes_every_stream(cluster: Cluster) -> None:
    cluster.revive()
    cluster.redis.keep_data()
    with cluster.sdk(0) as sdk:
        runs, texts = slow_runs(sdk, 4, "d")
        streams = Streams(cluster, runs)
        wait_until("every run to stream", lambda: all(streams.deltas(r.id) >= 3 for r in runs), 30)
        cluster.redis.shutdown()
        cluster.redis.start()
        wait_until("every stream to end", streams.all_ended, 30)
        assert set(streams.ended.values()) == {"done"}
        for run in runs:
            events = streams.events[run.id]
            assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
            assert events[-1][1] == "thread.run.completed"
            [(message_id, _, text)] = assistant_messages(sdk, run.thread_id)
            assert text == texts[run.thread_id]
            assert streams.text(run.id, message_id) == text


def test_redis_away_longer_than_publishers_wait_ends_streams_with_the_stored_run(
    cluster: Cluster,
) -> None:
    """Redis stopped (with its data) longer than a publisher waits for it: the
    turns fail (their events cannot be told), and once Redis is back the streams,
    which will get no more events, end with the stored run instead of waiting."""
    cluster.revive()
    cluster.redis.keep_data()
    with cluster.sdk(1) as sdk:
        runs, _ = slow_runs(sdk, 2, "g", chunks=60)
        streams = Streams(cluster, runs)
        wait_until("every run to stream", lambda: all(streams.deltas(r.id) >= 3 for r in runs), 30)
        cluster.redis.shutdown()
        # A turn's delta waits, gives up, then so does the publish of its failure.
        time.sleep(2 * PUBLISH_PATIENCE + 2)
        cluster.redis.start()
        wait_until("every stream to end", streams.all_ended, 30)
        assert set(streams.ended.values()) == {"done"}
        for run in runs:
            events = streams.events[run.id]
            assert [name for _, name, _ in events[-2:]] == ["thread.run.failed", "error"]
            assert events[-1][2]["code"] == "server_error"
            stored = sdk.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
            assert stored.status == "failed"
            assert stored.last_error is not None
            assert stored.last_error.code == "server_error"


def test_postgres_restarted_mid_run_pauses_runs_and_they_recover_whole(cluster: Cluster) -> None:
    cluster.revive()
    with cluster.sdk(0) as sdk:
        runs, texts = slow_runs(sdk, 4, "p")
        streams = Streams(cluster, runs)
        wait_for(
            "every run to stream",
            lambda: all(streams.deltas(r.id) >= 3 for r in runs),
            30,
            *cluster.procs,
        )
        cluster.postgres.stop("fast")  # every session cut
        wait_for("/readyz to say 503", lambda: not cluster.ready(), 15, *cluster.procs)
        cluster.postgres.start()
        wait_for("/readyz to say 200 again", cluster.ready, 30, *cluster.procs)
        wait_for("every run to complete", all_status(sdk, runs, "completed"), 60, *cluster.procs)
        wait_until("every stream to end", streams.all_ended, 30)
        assert set(streams.ended.values()) == {"done"}
        for run in runs:
            # Nothing half-written: one message, whole, and one step, completed.
            [(message_id, status, text)] = assistant_messages(sdk, run.thread_id)
            assert status == "completed"
            assert text == texts[run.thread_id]
            steps = sdk.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data
            assert [step.status for step in steps] == ["completed"]
            assert streams.text(run.id, message_id) == text
            assert streams.events[run.id][-1][1] == "thread.run.completed"
        # The workers take new runs after it.
        (after,), after_texts = slow_runs(sdk, 1, "q", chunks=2, token_delay=0.05)
        wait_for("a new run to complete", all_status(sdk, [after], "completed"), 30, *cluster.procs)
        assert assistant_texts(sdk, after.thread_id) == [after_texts[after.thread_id]]


def test_ingestion_runs_on_workers_and_a_killed_workers_file_is_taken_over(
    cluster: Cluster,
) -> None:
    cluster.revive()
    words = " ".join(f"word{n % 5000} and more text {n}." for n in range(40_000))
    with cluster.sdk(0) as sdk:
        file = sdk.files.create(file=("big.txt", words.encode()), purpose="assistants")
        store = sdk.vector_stores.create(name="big", file_ids=[file.id])
        marker = f"ingesting {file.id} into {store.id}"

        def taker() -> Proc | None:
            return next((w for w in cluster.workers if marker in w.whole_log()), None)

        dying = wait_for("a worker to take the file", taker, 20, *cluster.procs)
        dying.kill()
        [other] = [w for w in cluster.workers if w is not dying]

        def ended() -> Any:
            found = sdk.vector_stores.files.retrieve(file.id, vector_store_id=store.id)
            return None if found.status == "in_progress" else found

        done = wait_for("the file to be ingested", ended, 45, *cluster.procs)
        assert done.status == "completed", done.last_error
        assert marker in other.whole_log()  # taken over by the other worker
    # API processes ingest nothing: they queue the job.
    for api in cluster.apis:
        assert "ingesting" not in api.whole_log()
    dying.start()
    dying.wait_ready()


def code_run(sdk: openai.OpenAI, assistant_id: str, thread_id: str, code: str) -> str:
    """Run ``code`` in the thread's next turn; the logs it printed."""
    step = {"tool_calls": [{"name": "code_interpreter", "arguments": {"input": code}}]}
    sdk.beta.threads.messages.create(
        thread_id, role="user", content=json.dumps({"scripted": [step, "Ran."]})
    )
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=50, timeout=120
    )
    assert run.status == "completed", run.last_error
    steps = sdk.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc")
    [call] = [
        call
        for step in steps.data
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
    ]
    assert call.type == "code_interpreter"
    return "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")


def test_a_threads_code_session_moves_between_workers(cluster: Cluster) -> None:
    cluster.revive()
    first, second = cluster.workers
    with cluster.sdk(0) as sdk:
        upload = sdk.files.create(file=("data.txt", b"data"), purpose="assistants")
        assistant = sdk.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        thread = sdk.beta.threads.create(
            tool_resources={"code_interpreter": {"file_ids": [upload.id]}}
        )
        # The first turn can only land on the first worker.
        second.stop()
        made = "x = 41\n_ = open('made.txt', 'w').write('made')\nprint(open('data.txt').read())"
        assert code_run(sdk, assistant.id, thread.id, made) == "data\n"
        # The next on the second: a session of its own, with the thread's files and
        # what earlier code saved, and without the first's variables.
        second.start()
        second.wait_ready()
        assert first.proc is not None
        first.proc.send_signal(signal.SIGSTOP)
        try:
            moved = "y = 2\nprint(open('data.txt').read(), open('made.txt').read(), 'x' in dir())"
            assert code_run(sdk, assistant.id, thread.id, moved) == "data made False\n"
        finally:
            first.proc.send_signal(signal.SIGCONT)
        # Back on the first, whose session of the thread is now behind: started afresh.
        second.stop()
        back = "print('x' in dir(), 'y' in dir(), open('made.txt').read())"
        assert code_run(sdk, assistant.id, thread.id, back) == "False False made\n"
        assert code_run(sdk, assistant.id, thread.id, "z = 3\nprint('z' in dir())") == "True\n"
    second.start()
    second.wait_ready()
