"""Scale-out on PostgreSQL + Redis: two API processes (``threadline serve
--no-worker``) and two workers (``threadline worker``) as real subprocesses, one
procrastinate queue and one Redis event bus between them.

A run created through one API process is executed by a worker and streamed from
the other API process (live, and again after a ``Last-Event-ID``); a cancel sent
to the other API process stops the model call on the worker at once; a worker's
SIGTERM hands its turns to the other; a client whose API process is killed
resumes on the other and misses nothing; a worker killed with ``kill -9`` mid-run
leaves no run stuck: each resumes on the other
worker or fails, in bounded time, with exactly one assistant message per
completed run.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
from redis import Redis

from tests.support.polling import wait_until
from tests.support.servers import postgres_database
from threadline.testing import free_port

pytestmark = pytest.mark.postgres

KEY = "sk-scale-out-0000000000000000"
THREADLINE = Path(sys.executable).with_name("threadline")
REDIS_URL = "redis://127.0.0.1:6379/0"
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
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""


def wait_for(what: str, check: Callable[[], T | None], timeout: float, *procs: Proc) -> T:
    return wait_until(
        what, check, timeout, log=lambda: "\n".join(f"--- {p.name} ---\n{p.log()}" for p in procs)
    )


@dataclass
class Cluster:
    apis: list[Proc]
    workers: list[Proc]

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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    log_dir = tmp_path_factory.mktemp("cluster")
    prefix = f"test-{secrets.token_hex(6)}:"
    for database_url in postgres_database():
        env = os.environ | {
            "THREADLINE_DATA_DIR": str(log_dir),
            "THREADLINE_DATABASE_URL": database_url,
            "THREADLINE_API_KEYS": KEY,
            "THREADLINE_MODEL_BACKEND": "scripted",
            "THREADLINE_QUEUE": "procrastinate",
            "THREADLINE_REDIS_URL": REDIS_URL,
            "THREADLINE_REDIS_PREFIX": prefix,
            "THREADLINE_RUN_LEASE_SECONDS": "3",
            "THREADLINE_SWEEP_INTERVAL_SECONDS": "0.5",
            "THREADLINE_QUEUE_HEARTBEAT_SECONDS": "0.5",
            "THREADLINE_QUEUE_STALLED_SECONDS": "2",
            "THREADLINE_WORKER_CONCURRENCY": "8",
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
            redis = Redis.from_url(REDIS_URL)
            keys = list(redis.scan_iter(match=f"{prefix}*"))
            if keys:
                redis.delete(*keys)
            redis.close()


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
        # Not the next lease renewal (1 s here) nor the sweeper: the worker heard it.
        assert took < 1.0, f"the cancel took {took:.2f} s"


def slow_runs(sdk: openai.OpenAI, count: int, tag: str) -> tuple[list[Any], dict[str, str]]:
    """``count`` runs replying 20 chunks 0.25 s apart (5 s), and their texts by thread."""
    texts: dict[str, str] = {}
    runs = []
    assistant = sdk.beta.assistants.create(model="gpt-4o")
    for i in range(count):
        text = " ".join(f"{tag}{i}w{n}" for n in range(20))
        thread = sdk.beta.threads.create(
            messages=[{"role": "user", "content": script(text, chunks=20, token_delay=0.25)}]
        )
        texts[thread.id] = text
        runs.append(sdk.beta.threads.runs.create(thread.id, assistant_id=assistant.id))
    return runs, texts


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


def test_kill_9_of_a_worker_mid_run_leaves_no_run_stuck(cluster: Cluster) -> None:
    with cluster.sdk(0) as sdk:
        runs, texts = slow_runs(sdk, 6, "k")
        wait_for(
            "every run to be in progress",
            all_status(sdk, runs, "in_progress"),
            20,
            *cluster.procs,
        )
        time.sleep(1)  # half-way through their replies
        cluster.workers[0].kill()
        killed = time.monotonic()

        def all_ended() -> list[Any] | None:
            now = [sdk.beta.threads.runs.retrieve(r.id, thread_id=r.thread_id) for r in runs]
            return None if any(r.status in ("queued", "in_progress") for r in now) else now

        ended = wait_for("every run to end", all_ended, 30, *cluster.procs)
        assert time.monotonic() - killed < 30
        for run in ended:
            assert run.status in ("completed", "failed"), run
            if run.status == "failed":
                assert run.last_error is not None
                assert run.last_error.code == "server_error"
            made = assistant_texts(sdk, run.thread_id)
            if run.status == "completed":
                assert made == [texts[run.thread_id]]  # exactly one, whole
        assert sum(r.status == "completed" for r in ended) == len(runs)
    # The API processes never failed a request. (A worker's log has the traceback
    # procrastinate writes for each aborted job: the cancel test's.)
    for proc in cluster.apis:
        assert "Traceback" not in proc.log(), proc.log()


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
    for worker in cluster.workers:
        if worker.proc is None or worker.proc.poll() is not None:
            worker.start()
            worker.wait_ready()
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
