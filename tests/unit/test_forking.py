"""Child processes and BLAS work take turns: a fork beside a multi-threaded matrix
product can hang the loop that forked (``threadline/forking.py``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from threadline.forking import blas_turn, fork_turn


def _hold_blas(entered: threading.Event, leave: threading.Event) -> threading.Thread:
    def work() -> None:
        with blas_turn():
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=work)
    thread.start()
    return thread


async def test_a_fork_waits_for_the_blas_work_under_way() -> None:
    entered, leave, forked = threading.Event(), threading.Event(), asyncio.Event()
    worker = _hold_blas(entered, leave)
    assert entered.wait(5)

    async def fork() -> None:
        async with fork_turn():
            forked.set()

    task = asyncio.create_task(fork())
    await asyncio.sleep(0.05)
    assert not forked.is_set()
    leave.set()
    await asyncio.wait_for(task, 5)
    assert forked.is_set()
    worker.join(5)


async def test_blas_work_waits_while_a_fork_is_wanted() -> None:
    entered, leave = threading.Event(), threading.Event()
    async with fork_turn():
        worker = _hold_blas(entered, leave)
        await asyncio.sleep(0.05)
        assert not entered.is_set()
    assert await asyncio.to_thread(entered.wait, 5)
    leave.set()
    worker.join(5)


async def test_a_cancelled_fork_lets_blas_work_go_on() -> None:
    entered, leave = threading.Event(), threading.Event()
    worker = _hold_blas(entered, leave)
    assert entered.wait(5)

    async def fork() -> None:
        async with fork_turn():
            pass

    task = asyncio.create_task(fork())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    leave.set()
    worker.join(5)
    again, leave_again = threading.Event(), threading.Event()
    leave_again.set()
    _hold_blas(again, leave_again).join(5)
    assert again.is_set()  # no fork is left wanted


RACE = textwrap.dedent(
    """
    import asyncio, threading
    import numpy as np
    import uvloop
    from threadline.forking import blas_turn, fork_turn

    done = threading.Event()

    def products() -> None:
        a = np.ones((256, 384), dtype=np.float32)
        b = np.ones((384, 1536), dtype=np.float32)
        while not done.is_set():
            with blas_turn():
                a @ b

    async def main() -> None:
        worker = threading.Thread(target=products)
        worker.start()
        for _ in range(150):
            async with fork_turn():
                process = await asyncio.create_subprocess_exec("/bin/true")
            assert await process.wait() == 0
        done.set()
        worker.join()
        print("forked 150")

    uvloop.run(main())
    """
)


def test_forks_beside_matrix_products_on_the_servers_loop_do_not_hang(tmp_path: Path) -> None:
    """Without the turns this hung in one run of two (OpenBLAS's fork handler)."""
    script = tmp_path / "race.py"
    script.write_text(RACE)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "forked 150" in done.stdout
