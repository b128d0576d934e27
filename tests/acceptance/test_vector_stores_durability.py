"""Durable ingestion: a server process is killed (``kill -9``) while it ingests a
file, then a fresh ``threadline serve`` starts on the same database. The file is
taken up again and completes; nothing stays ``in_progress``.

The first server is a child process whose pipeline stops inside parsing (it writes
a marker file when it gets there), so the kill lands mid-ingestion for certain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest

from tests.support.polling import wait_until
from threadline.testing import free_port

KEY = "sk-ingest-durability-00000000000"
THREADLINE = Path(sys.executable).with_name("threadline")
T = TypeVar("T")

STUCK_SERVER = """
import asyncio, sys
from pathlib import Path
import uvicorn
from threadline.app import create_app
from tests.support.memory_pipeline import MemoryPipeline
from threadline.settings import Settings
from threadline.wiring import build_services

class StuckPipeline(MemoryPipeline):
    async def parse(self, data: bytes, filename: str) -> str:
        Path(sys.argv[2]).write_text(filename)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

settings = Settings()
app = create_app(settings, build_services(settings, pipeline=StuckPipeline()))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _wait(what: str, check: Callable[[], T | None], timeout: float = 20.0) -> T:
    return wait_until(what, check, timeout, every=0.05)


@pytest.fixture
def environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    return os.environ | {
        "THREADLINE_DATA_DIR": str(tmp_path),
        "THREADLINE_DATABASE_URL": database_url,
        "THREADLINE_API_KEYS": KEY,
        "THREADLINE_MODEL_BACKEND": "scripted",
        "THREADLINE_INGEST_LEASE_SECONDS": "1",
        "THREADLINE_SWEEP_INTERVAL_SECONDS": "0.2",
    }


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _client(port: int) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)


def _up(sdk: openai.OpenAI) -> bool:
    try:
        sdk.vector_stores.list(limit=1)
    except openai.APIConnectionError:
        return False
    return True


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_kill_9_mid_ingestion_resumes_on_restart(
    tmp_path: Path, environment: dict[str, str], processes: list[subprocess.Popen[bytes]]
) -> None:
    log, marker = tmp_path / "server.log", tmp_path / "parsing"
    port = free_port()
    stuck = _start([sys.executable, "-c", STUCK_SERVER, str(port), str(marker)], environment, log)
    processes.append(stuck)
    first = _client(port)
    _wait("the first server", lambda: _up(first))
    store = first.vector_stores.create(name="durable")
    uploaded = first.files.create(file=("kept.txt", b"words that survive"), purpose="assistants")
    first.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
    _wait("ingestion to start", marker.exists)
    os.kill(stuck.pid, signal.SIGKILL)
    stuck.wait(10)
    first.close()

    port = free_port()
    processes.append(_start([str(THREADLINE), "serve", "--port", str(port)], environment, log))
    second = _client(port)
    try:
        _wait("the second server", lambda: _up(second))

        def settled() -> Any:
            found = second.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)
            return found if found.status != "in_progress" else None

        done = _wait("the file to be ingested again", settled)
        assert done.status == "completed", log.read_text()
        content = second.vector_stores.files.content(uploaded.id, vector_store_id=store.id)
        assert [part.text for part in content] == ["words that survive"]
        counts = second.vector_stores.retrieve(store.id).file_counts
        assert (counts.completed, counts.in_progress) == (1, 0)
    finally:
        second.close()
