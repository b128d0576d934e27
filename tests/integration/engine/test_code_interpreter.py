"""The code_interpreter built-in on its own, over a real sandbox: what the model
reads after a session ended, a deleted thread's session, and a server without a
sandbox refusing to run code."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from threadline.engine.tools import BuiltinCall, ToolScope
from threadline.engine.tools.code_interpreter import RESTARTED, CodeInterpreter, Inputs
from threadline.models.base import ModelError
from threadline.sandbox import SandboxUnavailable
from threadline.settings import Settings
from threadline.storage.blobs import LocalBlobStore
from threadline.storage.db import Database

ROOT = Path(__file__).resolve().parents[3]


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": tmp_path,
            "sandbox_packages": ROOT / ".sandbox-packages",
            "sandbox_timeout_seconds": 3.0,
            **values,
        }
    )


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'ci.db'}")
    await database.migrate()
    yield database
    await database.dispose()


@pytest.fixture
async def tool(db: Database, tmp_path: Path) -> AsyncIterator[CodeInterpreter]:
    made = CodeInterpreter(db, LocalBlobStore(tmp_path / "files"), settings(tmp_path))
    try:
        await made.ready()
    except SandboxUnavailable as exc:
        await made.aclose()
        if os.environ.get("THREADLINE_REQUIRE_SANDBOX") == "1":
            pytest.fail(str(exc))
        pytest.skip(f"no sandbox here: {exc}")
    yield made
    await made.aclose()


def scope(thread_id: str) -> ToolScope:
    run = {"id": "run_1", "thread_id": thread_id, "tools": [{"type": "code_interpreter"}]}
    return ToolScope(run, "proj", Inputs(()), output_chars=4000)


async def run(tool: CodeInterpreter, thread_id: str, code: str) -> str:
    call = BuiltinCall("call_1", 0, json.dumps({"input": code}))
    outcome = await tool.execute(scope(thread_id), call)
    return outcome.output


async def test_the_model_is_told_when_a_session_was_restarted(tool: CodeInterpreter) -> None:
    assert await run(tool, "thread_a", "x = 5") == "(no output)"
    timed_out = await run(tool, "thread_a", "while True: pass")
    assert "TimeoutError" in timed_out
    again = await run(tool, "thread_a", "print(1)")
    assert again == RESTARTED + "1\n"
    # Told once: the session is a working one again.
    assert await run(tool, "thread_a", "print(2)") == "2\n"


async def test_a_cancelled_execution_leaves_a_working_session(tool: CodeInterpreter) -> None:
    await run(tool, "thread_d", "import time")
    started = asyncio.create_task(run(tool, "thread_d", "time.sleep(30); print('late')"))
    await asyncio.sleep(0.5)  # the sleep is running in the sandbox
    started.cancel()
    with pytest.raises(asyncio.CancelledError):
        await started
    # The next execution gets its own reply, not the abandoned one's.
    assert await run(tool, "thread_d", "print('next')") == RESTARTED + "next\n"


async def test_deleting_a_thread_ends_its_session(tool: CodeInterpreter) -> None:
    await run(tool, "thread_b", "y = 7")
    assert tool.pool is not None
    assert "thread_b" in tool.pool
    await tool.close_thread("thread_b")
    assert "thread_b" not in tool.pool


async def test_without_a_sandbox_no_code_runs(db: Database, tmp_path: Path) -> None:
    off = CodeInterpreter(db, LocalBlobStore(tmp_path / "files"), settings(tmp_path, sandbox="off"))
    try:
        with pytest.raises(ModelError, match="turned off"):
            await run(off, "thread_c", "print(1)")
        assert off.pool is None
    finally:
        await off.aclose()
