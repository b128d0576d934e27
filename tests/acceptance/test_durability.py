"""Durability: a real ``threadline serve`` process is killed (``kill -9``) or stopped
(SIGTERM) while runs execute, then started again with the same settings.

The promise: no run stays ``in_progress``; each resumes and completes (or fails
cleanly with ``server_error``); everything stored before the stop is intact; no
half-made assistant message or step is left ``in_progress``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa

from tests.support.polling import wait_until
from threadline.storage import tables
from threadline.storage.db import Database
from threadline.testing import free_port

KEY = "sk-durability-0000000000000000"
THREADLINE = Path(sys.executable).with_name("threadline")
T = TypeVar("T")

FAST_TEXT = "Finished before the stop."
# (chunks, seconds between them) of each slow run's reply.
SHORT = (16, 0.3)  # about 5 s: SIGTERM's grace lets it finish (drained)
LONG = (30, 0.4)  # about 12 s: outlives the grace, so it is handed back


class Server:
    """``threadline serve`` as a child process, restartable with the same settings."""

    def __init__(self, data_dir: Path, database_url: str, fast_path: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = data_dir / "server.log"
        self.env = os.environ | {
            "THREADLINE_DATA_DIR": str(data_dir),
            "THREADLINE_DATABASE_URL": database_url,
            "THREADLINE_SQLITE_FAST_PATH": str(fast_path).lower(),
            "THREADLINE_API_KEYS": KEY,
            "THREADLINE_MODEL_BACKEND": "scripted",
            "THREADLINE_RUN_LEASE_SECONDS": "3",
            "THREADLINE_SWEEP_INTERVAL_SECONDS": "0.5",
            "THREADLINE_LOG_LEVEL": "info",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            log.write(b"\n===== start =====\n")
            self.proc = subprocess.Popen(
                [str(THREADLINE), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited at start:\n{self.log()}")
            try:
                if httpx.get(self.url.removesuffix("/v1") + "/healthz", timeout=1).is_success:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not start in {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"SIGTERM did not stop the server:\n{self.log()}") from None
        self.proc = None
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"},
            timeout=10,
        )


@pytest.fixture
def server(tmp_path: Path, database_url: str, fast_path: bool) -> Iterator[Server]:
    srv = Server(tmp_path, database_url, fast_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------- helpers


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.is_success, f"{response.request.method} {response.url}: {response.text}"
    return response.json()  # type: ignore[no-any-return]


def _wait(what: str, check: Callable[[], T | None], timeout: float, server: Server) -> T:
    return wait_until(what, check, timeout, log=lambda: f"--- server log ---\n{server.log()}")


def _script(text: str, **options: Any) -> str:
    return json.dumps({"scripted": [{"text": text, **options}]})


def _run(http: httpx.Client, thread_id: str, run_id: str) -> dict[str, Any]:
    return _ok(http.get(f"/threads/{thread_id}/runs/{run_id}"))


def _messages(http: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    return _ok(http.get(f"/threads/{thread_id}/messages", params={"order": "asc"}))["data"]  # type: ignore[no-any-return]


def _steps(http: httpx.Client, thread_id: str, run_id: str) -> list[dict[str, Any]]:
    return _ok(http.get(f"/threads/{thread_id}/runs/{run_id}/steps"))["data"]  # type: ignore[no-any-return]


class Before:
    """Everything made before the stop, as the API returned it then."""

    def __init__(
        self, http: httpx.Client, server: Server, replies: tuple[tuple[int, float], ...]
    ) -> None:
        self.assistant = _ok(http.post("/assistants", json={"model": "gpt-4o", "name": "durable"}))
        # A thread with a run that finishes before the stop.
        self.done_thread = _ok(
            http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]})
        )
        run = _ok(
            http.post(
                f"/threads/{self.done_thread['id']}/runs",
                json={
                    "assistant_id": self.assistant["id"],
                    "additional_messages": [{"role": "user", "content": _script(FAST_TEXT)}],
                },
            )
        )
        self.done_run = _wait(
            "the fast run",
            lambda: (r := _run(http, run["thread_id"], run["id"]))["status"] == "completed" and r,
            15,
            server,
        )
        self.done_messages = _messages(http, self.done_thread["id"])
        self.done_steps = _steps(http, self.done_thread["id"], run["id"])
        # Threads whose runs stream slowly, stopped half-way.
        self.threads: list[dict[str, Any]] = []
        self.user_messages: dict[str, list[dict[str, Any]]] = {}
        self.runs: list[dict[str, Any]] = []
        self.texts: dict[str, str] = {}
        for i, (chunks, token_delay) in enumerate(replies):
            text = " ".join(f"word{n}" for n in range(chunks))
            content = _script(text, chunks=chunks, token_delay=token_delay)
            thread = _ok(
                http.post(
                    "/threads",
                    json={
                        "messages": [{"role": "user", "content": content}],
                        "metadata": {"n": str(i)},
                    },
                )
            )
            self.threads.append(thread)
            self.texts[thread["id"]] = text
            self.user_messages[thread["id"]] = _messages(http, thread["id"])
            self.runs.append(
                _ok(
                    http.post(
                        f"/threads/{thread['id']}/runs",
                        json={"assistant_id": self.assistant["id"]},
                    )
                )
            )

    def wait_half_made(self, http: httpx.Client, server: Server) -> None:
        """Until every slow run is in progress with its assistant message half made."""

        def half_made() -> bool:
            for run in self.runs:
                if _run(http, run["thread_id"], run["id"])["status"] != "in_progress":
                    return False
                made = [m for m in _messages(http, run["thread_id"]) if m["role"] == "assistant"]
                if not made or made[0]["status"] != "in_progress":
                    return False
            return True

        _wait("runs in progress with half-made messages", half_made, 15, server)

    def check_after(self, http: httpx.Client, server: Server) -> None:
        """After the restart: everything intact, every slow run finished."""
        assert _ok(http.get(f"/assistants/{self.assistant['id']}")) == self.assistant
        assert _ok(http.get(f"/threads/{self.done_thread['id']}")) == self.done_thread
        assert _run(http, self.done_thread["id"], self.done_run["id"]) == self.done_run
        assert _messages(http, self.done_thread["id"]) == self.done_messages
        assert _steps(http, self.done_thread["id"], self.done_run["id"]) == self.done_steps

        def all_finished() -> list[dict[str, Any]] | None:
            now = [_run(http, r["thread_id"], r["id"]) for r in self.runs]
            if any(r["status"] in ("queued", "in_progress") for r in now):
                return None
            return now

        finished = _wait("every run to finish after the restart", all_finished, 30, server)
        for thread in self.threads:
            assert _ok(http.get(f"/threads/{thread['id']}")) == thread
        for run in finished:
            assert run["status"] in ("completed", "failed"), run
            if run["status"] == "failed":
                assert run["last_error"]["code"] == "server_error", run
            messages = _messages(http, run["thread_id"])
            users = [m for m in messages if m["role"] == "user"]
            assert users == self.user_messages[run["thread_id"]]
            made = [m for m in messages if m["role"] == "assistant"]
            assert all(m["status"] != "in_progress" for m in made), made
            steps = _steps(http, run["thread_id"], run["id"])
            assert all(s["status"] != "in_progress" for s in steps), steps
            if run["status"] == "completed":
                assert len(made) == 1, made
                assert made[0]["status"] == "completed"
                assert made[0]["content"][0]["text"]["value"] == self.texts[run["thread_id"]]
                assert made[0]["run_id"] == run["id"]
                assert [s["status"] for s in steps] == ["completed"]


async def _stored_statuses(database_url: str) -> list[str]:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(sa.select(tables.runs.c.status))
            return [str(row.status) for row in rows]
    finally:
        await db.dispose()


# ----------------------------------------------------------------------- tests


def test_kill_9_mid_run_resumes_every_run(server: Server) -> None:
    with server.client() as http:
        before = Before(http, server, (SHORT, SHORT, LONG, LONG))
        before.wait_half_made(http, server)
    server.kill()
    server.start()
    with server.client() as http:
        before.check_after(http, server)
    assert "Traceback" not in server.log(), server.log()


def test_sigterm_mid_run_drains_or_hands_back(server: Server, database_url: str) -> None:
    with server.client() as http:
        before = Before(http, server, (SHORT, SHORT, LONG, LONG))
        before.wait_half_made(http, server)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert server.terminate() in (0, -signal.SIGTERM), server.log()
    # Stopped gracefully: nothing is left claimed by the process that is gone.
    statuses = asyncio.run(_stored_statuses(database_url))
    assert "in_progress" not in statuses, statuses
    server.start()
    with server.client() as http:
        before.check_after(http, server)
    after_restart = server.log().rsplit("===== start =====", 1)[-1]
    # Handed back, not lost: the new process picks the runs up, no lease lapses.
    assert "lost its worker" not in after_restart, after_restart
    assert "Traceback" not in server.log(), server.log()
