"""A session's memory bounded as a whole: processes each under the per-process limit
but together over the session's are stopped, by a cgroup where this host allows one
and by the watcher otherwise, in every backend that starts here; the host's event
loop keeps turning meanwhile, and the session works again at its next execution."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from threadline.sandbox import CodeSession, SessionFailed
from threadline.sandbox.limits import MIB
from threadline.sandbox.memory import (
    CgroupGuard,
    MemoryGuard,
    WatchGuard,
    choose_memory_guard,
    process_tree,
)

SessionFactory = Callable[..., Awaitable[CodeSession]]
SESSION_MB = 400

# Four children of 160 MiB each: every one far under the 1 GiB a process may have,
# together 640 MiB, over the session's 400.
SPREAD = """
import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        hold = b'x' * (160 * 1024 * 1024)
        time.sleep(2)
        os._exit(0)
    children.append(pid)
statuses = [os.waitpid(pid, 0)[1] for pid in children]
print(sum(1 for status in statuses if status == 0), 'of 4 whole')
"""


@pytest.fixture(params=["cgroup", "watch"])
async def guard(request: pytest.FixtureRequest) -> AsyncIterator[MemoryGuard]:
    made: MemoryGuard
    if request.param == "cgroup":
        made = choose_memory_guard(SESSION_MB * MIB)
        if not isinstance(made, CgroupGuard):
            pytest.skip("this host lets the server make no memory cgroup")
    else:
        made = WatchGuard(SESSION_MB * MIB, interval=0.05)
    yield made
    await made.aclose()


async def slowest_tick(work: Awaitable[object]) -> float:
    """The longest the event loop went without turning while ``work`` ran."""
    slowest = 0.0
    task = asyncio.ensure_future(work)
    while not task.done():
        started = time.monotonic()
        await asyncio.sleep(0.05)
        slowest = max(slowest, time.monotonic() - started)
    await task
    return slowest


async def test_processes_together_over_the_session_limit_are_stopped(
    new_session: SessionFactory, guard: MemoryGuard
) -> None:
    session = await new_session(guard)
    bystander = await new_session(guard)
    await bystander.execute("kept = 'here'")
    running = asyncio.ensure_future(session.execute(SPREAD, time_limit=25))
    slowest = await slowest_tick(running)
    result = running.result()
    assert slowest < 1.0
    assert not result.timed_out
    said = (result.error or "") + result.logs
    assert "out of memory" in said, result
    assert "4 of 4 whole" not in said
    after = await session.execute("print('fine')")
    assert after.logs == "fine\n"
    kept = await bystander.execute("print(kept)")
    assert kept.logs == "here\n"


async def test_one_process_under_the_session_limit_runs_whole(
    new_session: SessionFactory, guard: MemoryGuard
) -> None:
    session = await new_session(guard)
    result = await session.execute("hold = b'x' * (100 * 1024 * 1024)\nprint(len(hold))")
    assert result.error is None, result
    assert result.logs == f"{100 * MIB}\n"


async def test_an_ended_session_leaves_no_process_behind(
    new_session: SessionFactory, guard: MemoryGuard
) -> None:
    session = await new_session(guard)
    await session.execute("import subprocess\nsubprocess.Popen(['sleep', '300'])")
    pid = session.pid
    assert pid is not None
    assert process_tree(pid)
    await session.close()
    assert process_tree(pid) == []


async def test_a_guard_that_cannot_bound_a_session_refuses_to_start_it(
    new_session: SessionFactory, tmp_path: Path
) -> None:
    unwritable = tmp_path / "not-a-cgroup"
    unwritable.write_text("a file where the cgroup's directory would go")
    with pytest.raises(SessionFailed, match="memory could not be bounded"):
        await new_session(CgroupGuard(SESSION_MB * MIB, unwritable, 2))


class _HalfMadeGuard(CgroupGuard):
    """Makes the session's cgroup, then cannot set its limit (as a cgroup tree that
    refuses ``memory.max`` would)."""

    def wrap(self, session_name: str, argv: list[str]) -> list[str]:
        self._dir(session_name).mkdir(parents=True)
        raise PermissionError(13, "Permission denied", "memory.max")


def _open_descriptors() -> set[str]:
    return {
        os.readlink(f"/proc/self/fd/{fd}")
        for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{fd}")
    }


async def test_a_session_refused_at_its_start_leaves_nothing_behind(
    new_session: SessionFactory, tmp_path: Path
) -> None:
    before = _open_descriptors()
    with pytest.raises(SessionFailed, match="memory could not be bounded"):
        await new_session(_HalfMadeGuard(SESSION_MB * MIB, tmp_path, 2))
    assert not {d for d in _open_descriptors() - before if "threadline-seccomp" in d}
    assert os.listdir(tmp_path) == []
