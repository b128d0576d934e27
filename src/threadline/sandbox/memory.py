"""Memory of a whole session: every process of it together, not each one alone.

The rlimits (``limits``) bound each process; code that forks could still hold
``processes * memory_mb`` at once. A ``MemoryGuard`` bounds the session's processes
together at ``session_memory_mb``, with the best means the host offers, chosen once
when the pool is made (``choose_memory_guard``) and logged:

- ``CgroupGuard``: a memory cgroup per session, on cgroup v2 (``memory.max``, where
  the server may create cgroups under ``/sys/fs/cgroup``) or on the v1 memory
  hierarchy (``memory.limit_in_bytes``). The session's first process joins it before
  it starts the sandbox (a shell that writes its own pid to ``cgroup.procs``, then
  ``exec``s), so every process the session forks is in it from its first
  instruction, and the kernel's OOM killer acts inside the session only. Under gVisor
  the Sentry's own memory (which holds the code's memory and its tmpfs) is what the
  cgroup counts; runsc itself is told to leave cgroups alone (see ``backends``).
  When the session ends, whatever is left in its cgroup is killed and the cgroup
  removed.
- ``WatchGuard``, where no cgroup can be made (an unprivileged server, a read-only
  ``/sys/fs/cgroup``): one task that scans ``/proc`` every ``interval`` seconds, sums
  the resident memory of each session's process tree and kills a tree over the
  limit. It may miss a spike shorter than its interval (the per-process rlimits
  still hold then), and its scan costs CPU in proportion to the host's processes
  (about 10 ms for 140 processes on a slow 2-core host: 4 % of a core at 0.25 s).

Pages of the tmpfs mounts (``/mnt/data``, ``/tmp``) count as the session's memory
too, so the limit must leave room for them beside the code's own memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
_JOIN = 'echo $$ > "$0" && exec "$@"'
_RELEASE_TRIES = 50
_PAGE = os.sysconf("SC_PAGE_SIZE")


class MemoryGuard(ABC):
    """Bounds the memory of each session's processes together."""

    name: ClassVar[str]

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes

    def wrap(self, session_name: str, argv: list[str]) -> list[str]:
        """``argv`` made to start inside the session's bound (blocking: file system)."""
        return argv

    async def started(self, session_name: str, pid: int) -> None:  # noqa: B027 - optional
        """The session's first process is running as ``pid``."""

    @abstractmethod
    def kills(self, session_name: str) -> int:
        """How many processes of the session were killed for memory so far."""

    @abstractmethod
    async def release(self, session_name: str) -> None:
        """The session ended: kill what is left of it and forget it."""

    async def aclose(self) -> None:  # noqa: B027 - optional
        """The pool is closing: remove what the guard made for all its sessions."""

    def describe(self) -> str:
        return f"{self.name} ({self.limit_bytes // (1024 * 1024)} MiB a session)"


class CgroupGuard(MemoryGuard):
    name = "cgroup"

    def __init__(self, limit_bytes: int, base: Path, version: int) -> None:
        super().__init__(limit_bytes)
        self.base = base
        self.version = version

    def _dir(self, session_name: str) -> Path:
        return self.base / session_name

    def wrap(self, session_name: str, argv: list[str]) -> list[str]:
        group = self._dir(session_name)
        group.mkdir(parents=True, exist_ok=True)
        limit = str(self.limit_bytes)
        if self.version == 2:
            (group / "memory.max").write_text(limit)
            swap = group / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
        else:
            (group / "memory.limit_in_bytes").write_text(limit)
            with_swap = group / "memory.memsw.limit_in_bytes"
            if with_swap.exists():  # swap may not stretch the limit either
                with_swap.write_text(limit)
        return ["/bin/sh", "-c", _JOIN, str(group / "cgroup.procs"), *argv]

    def kills(self, session_name: str) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (self._dir(session_name) / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    async def release(self, session_name: str) -> None:
        await asyncio.to_thread(self._release, self._dir(session_name))

    def _release(self, group: Path) -> None:
        if not group.exists():
            return
        for _ in range(_RELEASE_TRIES):
            try:
                group.rmdir()
                return
            except OSError:
                self._kill_members(group)
                time.sleep(0.02)  # killed processes leave their cgroup as they are reaped
        logger.warning("could not remove the session cgroup %s", group)

    async def aclose(self) -> None:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self.base.rmdir)

    def _kill_members(self, group: Path) -> None:
        kill = group / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
                return
        with contextlib.suppress(OSError):
            for line in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(line), signal.SIGKILL)


class WatchGuard(MemoryGuard):
    name = "watch"

    def __init__(self, limit_bytes: int, interval: float = 0.25) -> None:
        super().__init__(limit_bytes)
        self.interval = interval
        self._roots: dict[str, int] = {}  # by session: its first process
        self._kills: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def started(self, session_name: str, pid: int) -> None:
        self._roots[session_name] = pid
        self._kills[session_name] = 0
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="sandbox-memory-watch")

    async def _watch(self) -> None:
        """One scan of ``/proc`` a round for every session at once."""
        while self._roots:
            await asyncio.sleep(self.interval)
            over = await asyncio.to_thread(self._over, dict(self._roots))
            for session_name, tree in over.items():
                for member in tree:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(member, signal.SIGKILL)
                self._kills[session_name] = self._kills.get(session_name, 0) + len(tree)

    def _over(self, roots: dict[str, int]) -> dict[str, list[int]]:
        """The process trees of the sessions over the limit, by session."""
        children = _children()
        over = {}
        for session_name, root in roots.items():
            tree = descendants(root, children)
            used = resident_bytes(tree)
            if used > self.limit_bytes:
                logger.info(
                    "a sandbox session used %d MiB, over its %d MiB: killing it",
                    used // (1024 * 1024),
                    self.limit_bytes // (1024 * 1024),
                )
                over[session_name] = tree
        return over

    def kills(self, session_name: str) -> int:
        return self._kills.get(session_name, 0)

    async def release(self, session_name: str) -> None:
        self._roots.pop(session_name, None)
        self._kills.pop(session_name, None)

    async def aclose(self) -> None:
        self._roots.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _children() -> dict[int, list[int]]:
    """Every process's children, from one scan of ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # the command name, in parentheses, may hold spaces: fields follow its end
        parent = int(stat[stat.rfind(b")") + 2 :].split(maxsplit=2)[1])
        children.setdefault(parent, []).append(int(entry))
    return children


def descendants(root: int, children: dict[int, list[int]]) -> list[int]:
    """``root`` and every process descended from it (empty when ``root`` is gone)."""
    if not os.path.exists(f"/proc/{root}"):
        return []
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (empty when ``root`` is gone)."""
    return descendants(root, _children())


def resident_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with (
            contextlib.suppress(OSError, IndexError, ValueError),
            open(f"/proc/{pid}/statm", "rb") as handle,
        ):
            total += int(handle.read().split()[1]) * _PAGE
    return total


def _cgroup_base() -> tuple[Path, int] | None:
    """Where this server may make session cgroups, and the cgroup version there."""
    name = f"threadline-{os.getpid()}"
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists():
        with contextlib.suppress(OSError):
            if "memory" in controllers.read_text().split():
                control = CGROUP_ROOT / "cgroup.subtree_control"
                if "memory" not in control.read_text().split():
                    control.write_text("+memory")
                return CGROUP_ROOT / name, 2
        return None
    if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists():
        return CGROUP_ROOT / "memory" / name, 1
    return None


def _cgroup_works(base: Path, version: int, limit_bytes: int) -> str | None:
    """Why session cgroups cannot be made under ``base``, or None when they can."""
    probe = CgroupGuard(limit_bytes, base, version)
    try:
        probe.wrap("probe", [])
    except OSError as exc:
        with contextlib.suppress(OSError):
            (base / "probe").rmdir()
        return f"{base}: {exc.strerror or exc}"
    probe._release(base / "probe")
    return None


def choose_memory_guard(limit_bytes: int) -> MemoryGuard:
    """A cgroup per session where the host lets this server make one, else a watcher."""
    found = _cgroup_base()
    if found is None:
        reason = "no writable memory cgroup hierarchy"
    else:
        reason = _cgroup_works(*found, limit_bytes) or ""
        if not reason:
            return CgroupGuard(limit_bytes, *found)
    logger.info("sandbox sessions' memory is watched, not bounded by a cgroup: %s", reason)
    return WatchGuard(limit_bytes)


class NoGuard(MemoryGuard):
    """Only the per-process rlimits (a session started without a pool, in tests)."""

    name = "none"

    def kills(self, session_name: str) -> int:
        return 0

    async def release(self, session_name: str) -> None:
        return None
