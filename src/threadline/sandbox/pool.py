"""``SessionPool``: the live code sessions, one per thread, bounded and reaped.

At most ``max_sessions`` processes live at once. A thread without a session when the
pool is full takes the place of the least recently used idle session, which is ended
(its next execution reports ``restarted``); when every session is busy, it waits for
one to finish. Sessions idle longer than ``idle_seconds`` are ended by ``reap_idle``
(run it periodically with ``run_reaper``). The first execution of a thread whose
session the pool ended reports ``restarted``, so the model can be told its variables
are gone; ``close`` (the thread was deleted) forgets the thread instead. The clock is
injectable for tests.

When the server runs as root, each live session gets a host uid of its own,
``UID_BASE + slot``: the process limit (``RLIMIT_NPROC``) counts processes per host
uid, so one session's fork bomb cannot use up another's, and the sandbox never runs as
the host's root. As another user, sessions run as that user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from threadline.sandbox.backends import Launch, Sandbox
from threadline.sandbox.memory import MemoryGuard
from threadline.sandbox.result import ExecutionResult
from threadline.sandbox.session import CodeSession, SessionClosed

logger = logging.getLogger(__name__)

UID_BASE = 1_700_000_000
"""First host uid of sessions; far above the ranges Linux hands to users and to
``/etc/subuid`` (100000 + 65536 per user), so it owns nothing on the host."""


_LOST_KEPT = 100_000


class SessionPool:
    def __init__(
        self,
        sandbox: Sandbox,
        launch: Launch,
        *,
        max_sessions: int = 16,
        idle_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        guard: MemoryGuard | None = None,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.sandbox = sandbox
        self._launch = launch
        self.guard = guard
        self._max = max_sessions
        self._idle = idle_seconds
        self._clock = clock
        self._sessions: OrderedDict[str, CodeSession] = OrderedDict()
        self._slots: dict[str, int] = {}
        self._used: dict[str, float] = {}
        self._claims: dict[str, int] = {}
        self._lost: OrderedDict[str, bool] = OrderedDict()
        """Threads whose session the pool ended (full, idle): their next start is a restart."""
        self._changed = asyncio.Condition()
        self._own_uids = os.geteuid() == 0 and not sandbox.needs_root

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, thread_id: object) -> bool:
        return thread_id in self._sessions

    async def _session(self, thread_id: str) -> CodeSession:
        async with self._changed:
            while True:
                session = self._sessions.get(thread_id)
                if session is not None:
                    self._sessions.move_to_end(thread_id)
                    self._used[thread_id] = self._clock()
                    self._claims[thread_id] += 1
                    return session
                if len(self._sessions) < self._max:
                    break
                victim = next((t for t in self._sessions if not self._claims[t]), None)
                if victim is not None:
                    logger.info("sandbox pool full: ending the session of %s", victim)
                    await self._end(victim)
                    break
                await self._changed.wait()
            slot = min(set(range(self._max)) - set(self._slots.values()))
            launch = self._launch
            if self._own_uids:
                launch = replace(launch, host_uid=UID_BASE + slot)
            session = CodeSession(self.sandbox, launch, self.guard)
            self._sessions[thread_id] = session
            self._slots[thread_id] = slot
            self._used[thread_id] = self._clock()
            self._claims[thread_id] = 1
            return session

    async def _end(self, thread_id: str, *, lost: bool = True) -> None:
        if lost:
            self._lost[thread_id] = True
            while len(self._lost) > _LOST_KEPT:
                self._lost.popitem(last=False)
        session = self._sessions.pop(thread_id)
        self._slots.pop(thread_id, None)
        self._used.pop(thread_id, None)
        self._claims.pop(thread_id, None)
        await session.close()

    async def _done(self, thread_id: str, session: CodeSession) -> None:
        async with self._changed:
            if self._sessions.get(thread_id) is session:
                self._used[thread_id] = self._clock()
                self._claims[thread_id] -= 1
            self._changed.notify_all()

    async def execute(
        self, thread_id: str, code: str, time_limit: float | None = None
    ) -> ExecutionResult:
        """Run ``code`` in the thread's session (started if it has none)."""
        while True:
            session = await self._session(thread_id)
            try:
                result = await session.execute(code, time_limit)
            except SessionClosed:
                continue  # closed while this request queued: the thread starts anew
            finally:
                await self._done(thread_id, session)
            if self._lost.pop(thread_id, False) and not result.restarted:
                result = replace(result, restarted=True)
            return result

    async def put_file(self, thread_id: str, name: str, data: bytes) -> str:
        """Place a file at ``/mnt/data/<sanitised name>`` in the thread's session."""
        while True:
            session = await self._session(thread_id)
            try:
                return await session.put_file(name, data)
            except SessionClosed:
                continue
            finally:
                await self._done(thread_id, session)

    async def close(self, thread_id: str) -> None:
        """End the thread's session (thread deleted); nothing if it has none."""
        async with self._changed:
            if thread_id in self._sessions:
                await self._end(thread_id, lost=False)
            self._lost.pop(thread_id, None)
            self._changed.notify_all()

    async def reap_idle(self) -> list[str]:
        """End the sessions idle for ``idle_seconds``; the threads whose sessions ended."""
        now = self._clock()
        async with self._changed:
            stale = [
                thread_id
                for thread_id, session in self._sessions.items()
                if not self._claims[thread_id] and now - self._used[thread_id] >= self._idle
            ]
            for thread_id in stale:
                logger.info("ending the idle sandbox session of %s", thread_id)
                await self._end(thread_id)
            if stale:
                self._changed.notify_all()
        return stale

    async def run_reaper(self, interval: float | None = None) -> None:
        """Reap idle sessions forever (cancel the task to stop)."""
        period = interval if interval is not None else max(1.0, min(60.0, self._idle / 4))
        while True:
            await asyncio.sleep(period)
            ended = await self.reap_idle()
            if ended:
                logger.info("ended %d idle sandbox session(s)", len(ended))

    async def aclose(self) -> None:
        async with self._changed:
            for thread_id in list(self._sessions):
                await self._end(thread_id, lost=False)
            self._changed.notify_all()
        if self.guard is not None:
            await self.guard.aclose()
