"""Child processes and BLAS work take turns.

The server's loop (uvloop) starts a child process with ``fork()``, which runs
OpenBLAS's fork handler: it stops OpenBLAS's worker threads. When another thread is
inside a multi-threaded BLAS call at that moment (a sentence embedding: file
ingestion, the local model's tool-need gate), both can wait on each other for ever,
and the event loop that forked hangs with them. Seen: the sandbox's probe at start-up
against the gate's first embedding; in a loop of 300 forks beside a thread of matrix
products, one run in two hung.

So multi-threaded BLAS work runs inside ``blas_turn()`` and a fork inside
``fork_turn()``: a fork waits (off the event loop's back: it polls) for the BLAS work
under way to end, and BLAS work waits while a fork is wanted, so forks are not starved
by a stream of batches. Forks may overlap one another, and BLAS work too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

POLL_SECONDS = 0.002
"""How often a fork looks whether the BLAS work it waits for has ended."""

_turns = threading.Condition()
_working = 0
"""BLAS calls under way."""
_forking = 0
"""Forks wanted or under way."""


@contextmanager
def blas_turn() -> Iterator[None]:
    """Around multi-threaded BLAS work: waits while a fork is wanted (blocking)."""
    global _working
    with _turns:
        while _forking:
            _turns.wait()
        _working += 1
    try:
        yield
    finally:
        with _turns:
            _working -= 1
            _turns.notify_all()


@asynccontextmanager
async def fork_turn() -> AsyncIterator[None]:
    """Around starting a child process: waits for the BLAS work under way to end."""
    global _forking
    with _turns:
        _forking += 1
    try:
        while True:
            with _turns:
                if not _working:
                    break
            await asyncio.sleep(POLL_SECONDS)
        yield
    finally:
        with _turns:
            _forking -= 1
            _turns.notify_all()
