"""SessionPool: sessions per thread, bounded, least recently used reaped, in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from threadline.sandbox import Launch, Sandbox, SessionPool

PoolFactory = Callable[..., SessionPool]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make_pool(backend: Sandbox, launch: Launch) -> AsyncIterator[PoolFactory]:
    pools: list[SessionPool] = []

    def make(**options: Any) -> SessionPool:
        pool = SessionPool(backend, launch, **options)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.aclose()


async def test_threads_keep_their_own_state(make_pool: PoolFactory) -> None:
    pool = make_pool(max_sessions=4)
    await pool.execute("thread_a", "name = 'a'")
    await pool.execute("thread_b", "name = 'b'")
    assert (await pool.execute("thread_a", "print(name)")).logs == "a\n"
    assert (await pool.execute("thread_b", "print(name)")).logs == "b\n"
    path = await pool.put_file("thread_a", "only_a.txt", b"1")
    assert path == "/mnt/data/only_a.txt"
    check = "import os; print(os.path.exists('/mnt/data/only_a.txt'))"
    assert (await pool.execute("thread_b", check)).logs == "False\n"
    assert len(pool) == 2


async def test_least_recently_used_session_makes_room(make_pool: PoolFactory) -> None:
    pool = make_pool(max_sessions=2)
    await pool.execute("t1", "x = 1")
    await pool.execute("t2", "x = 2")
    await pool.execute("t1", "x += 10")  # t2 is now the least recently used
    third = await pool.execute("t3", "print('t3')")
    assert not third.restarted
    assert len(pool) == 2
    assert "t2" not in pool
    kept = await pool.execute("t1", "print(x)")
    assert kept.logs == "11\n"
    assert not kept.restarted
    lost = await pool.execute("t2", "print('x' in globals())")
    assert lost.logs == "False\n"
    assert lost.restarted  # the model must be told its session started afresh
    assert not (await pool.execute("t2", "print(1)")).restarted


async def test_idle_sessions_are_reaped(make_pool: PoolFactory) -> None:
    clock = FakeClock()
    pool = make_pool(max_sessions=4, idle_seconds=3600, clock=clock)
    await pool.execute("old", "v = 1")
    clock.now += 3000
    await pool.execute("recent", "v = 2")
    assert await pool.reap_idle() == []
    clock.now += 600
    assert await pool.reap_idle() == ["old"]
    assert "old" not in pool
    assert "recent" in pool
    after = await pool.execute("old", "print('v' in globals())")
    assert after.logs == "False\n"
    assert after.restarted


async def test_close_ends_the_thread_session(make_pool: PoolFactory) -> None:
    pool = make_pool(max_sessions=4)
    await pool.execute("t", "v = 1")
    await pool.close("t")
    assert "t" not in pool
    await pool.close("never-seen")
    fresh = await pool.execute("t", "print('v' in globals())")
    assert fresh.logs == "False\n"
    assert not fresh.restarted  # a deleted thread's successor is simply new


async def test_executions_of_one_thread_run_in_order(make_pool: PoolFactory) -> None:
    pool = make_pool(max_sessions=2)
    await pool.execute("t", "seen = []")
    results = await asyncio.gather(
        *(pool.execute("t", f"import time; time.sleep(0.01); seen.append({i})") for i in range(6))
    )
    assert all(r.error is None for r in results)
    assert (await pool.execute("t", "print(seen)")).logs == "[0, 1, 2, 3, 4, 5]\n"


async def test_a_full_pool_of_busy_sessions_waits(make_pool: PoolFactory) -> None:
    pool = make_pool(max_sessions=1)
    await pool.execute("busy", "import time")
    first = asyncio.create_task(pool.execute("busy", "time.sleep(1.5); print('done')"))
    await asyncio.sleep(0)  # the first claims the only session
    second = await pool.execute("other", "print('other')")
    assert (await first).logs == "done\n"
    assert second.logs == "other\n"
    assert "busy" not in pool


async def test_the_event_loop_keeps_running_during_executions(make_pool: PoolFactory) -> None:
    pool = make_pool(max_sessions=2)
    await pool.execute("t", "print(0)")
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    result = await pool.execute("t", "import time; time.sleep(1)\nwhile True: pass", time_limit=2)
    stop.set()
    await ticker
    assert result.timed_out
    assert len(gaps) > 20
    assert max(gaps) < 0.5
