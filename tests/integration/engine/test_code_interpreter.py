"""The code_interpreter built-in on its own, over a real sandbox: what the model
reads after a session ended, a deleted thread's session, a thread whose code moves
between two workers' pools, and a server without a sandbox refusing to run code."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from threadline.engine.tools import BuiltinCall, ToolScope
from threadline.engine.tools.code_interpreter import RESTARTED, RESTORED, CodeInterpreter, Inputs
from threadline.models.base import ModelError
from threadline.sandbox import Sandbox, SandboxUnavailable
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


_chosen: list[Sandbox] = []  # the sandbox the first tool's probe chose, for the others


@pytest.fixture
async def tool(db: Database, tmp_path: Path) -> AsyncIterator[CodeInterpreter]:
    blobs = LocalBlobStore(tmp_path / "files")
    made = CodeInterpreter(db, blobs, settings(tmp_path), *_chosen[:1])
    try:
        pool = await made.ready()
    except SandboxUnavailable as exc:
        await made.aclose()
        if os.environ.get("THREADLINE_REQUIRE_SANDBOX") == "1":
            pytest.fail(str(exc))
        pytest.skip(f"no sandbox here: {exc}")
    _chosen[:] = [pool.sandbox]
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


@pytest.fixture
async def other_tool(db: Database, tmp_path: Path, tool: CodeInterpreter) -> AsyncIterator[Any]:
    """A second worker's tool: its own pool, the same database and files."""
    assert tool.pool is not None
    made = CodeInterpreter(db, tool.blobs, settings(tmp_path), tool.pool.sandbox)
    await made.ready()
    yield made
    await made.aclose()


async def test_a_thread_moving_to_another_worker_starts_afresh_with_its_files(
    tool: CodeInterpreter, other_tool: CodeInterpreter
) -> None:
    saved = await run(tool, "thread_m", "x = 41\n_ = open('/mnt/data/kept.txt', 'w').write('kept')")
    assert saved == "(no output)\n[file saved: sandbox:/mnt/data/kept.txt]"
    # A thread new to both workers: not a restart.
    assert await run(other_tool, "thread_n", "print(2)") == "2\n"
    moved = await run(other_tool, "thread_m", "print(open('kept.txt').read())\nprint(x)")
    assert moved.startswith(RESTORED + "kept\n")
    assert "NameError: name 'x' is not defined" in moved
    assert await run(other_tool, "thread_m", "y = 1\nprint('same')") == "same\n"
    # Back on the first worker: its session is behind the thread's, so it starts afresh.
    back = await run(tool, "thread_m", "print('y' in dir(), open('kept.txt').read())")
    assert back == RESTORED + "False kept\n"
    assert await run(tool, "thread_m", "print('again')") == "again\n"
    # A deleted thread's id starting over elsewhere is a new session, not a restart.
    await tool.close_thread("thread_m")
    assert await run(other_tool, "thread_m", "print(4)") == "4\n"


async def test_the_reaper_ends_sessions_that_moved_or_whose_thread_was_deleted(
    tool: CodeInterpreter, other_tool: CodeInterpreter
) -> None:
    for thread_id in ("thread_s", "thread_t", "thread_u"):
        await run(tool, thread_id, "v = 1")
    await run(other_tool, "thread_s", "v = 2")  # moved
    await other_tool.close_thread("thread_t")  # deleted, through another process
    assert sorted(await tool.end_moved()) == ["thread_s", "thread_t"]
    assert tool.pool is not None
    assert "thread_s" not in tool.pool
    assert "thread_t" not in tool.pool
    assert await run(tool, "thread_u", "print(v)") == "1\n"
    assert await tool.end_moved() == []


async def test_a_resumed_turn_annotates_files_made_before_a_worker_died(
    db: Database, tool: CodeInterpreter, other_tool: CodeInterpreter
) -> None:
    call = BuiltinCall("call_made", 0, json.dumps({"input": "_ = open('out.csv', 'w').write('a')"}))
    outcome = await tool.execute(scope("thread_r"), call)
    assert outcome.output.endswith("[file saved: sandbox:/mnt/data/out.csv]")
    text = "Here: sandbox:/mnt/data/out.csv"
    stored = {"id": "call_made", "type": "code_interpreter", **outcome.call}
    # The worker that ran the call is gone; the other one loads the run's turn.
    async with db.read() as conn:
        await other_tool.load(conn, "proj", {**scope("thread_r").run, "assistant_id": "asst_x"})
    [note] = other_tool.annotate(text, [stored])
    assert note["type"] == "file_path"
    assert text[note["start_index"] : note["end_index"]] == "sandbox:/mnt/data/out.csv"
    made = await other_tool.blobs.open(note["file_path"]["file_id"])
    assert b"".join([chunk async for chunk in made.chunks()]) == b"a"
    await made.aclose()


async def test_the_reaper_goes_on_after_the_database_was_unreachable(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sandbox_idle_seconds 4: the reaper looks every second.
    made = CodeInterpreter(
        db, LocalBlobStore(tmp_path / "files"), settings(tmp_path, sandbox_idle_seconds=4.0)
    )
    real = made.end_moved
    calls: list[int] = []
    looked_again = asyncio.Event()

    async def flaky() -> list[str]:
        calls.append(1)
        if len(calls) == 1:  # what asyncpg raises while PostgreSQL restarts
            raise ConnectionRefusedError(111, "Connect call failed")
        looked_again.set()
        return await real()

    monkeypatch.setattr(made, "end_moved", flaky)
    try:
        try:
            await made.ready()
        except SandboxUnavailable as exc:
            pytest.skip(f"no sandbox here: {exc}")
        await asyncio.wait_for(looked_again.wait(), 10)
        assert made._reaper is not None
        assert not made._reaper.done()
    finally:
        await made.aclose()
