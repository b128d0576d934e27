"""``CodeSession``: one stateful Python process in a sandbox, driven over its pipes.

Variables and files in ``/mnt/data`` live as long as the process. An execution that
runs past its timeout, or a process that dies (killed by its own code, out of memory),
ends the session; the execution says so, and the next one starts a fresh process and
reports ``restarted=True``. Executions and file uploads of one session run one at a
time, in the order they were asked for (``asyncio.Lock`` is first-come first-served).
Nothing here blocks the event loop: the process is an asyncio subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import struct
import unicodedata
from dataclasses import replace
from typing import Any

from threadline.forking import fork_turn
from threadline.sandbox.backends import Launch, Sandbox
from threadline.sandbox.errors import InvalidFileName, SessionFailed
from threadline.sandbox.limits import MIB
from threadline.sandbox.memory import MemoryGuard, NoGuard
from threadline.sandbox.result import ExecutionResult, OutputFile

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
_START_TIMEOUT = 60.0
_STDERR_KEPT = 4096
_PIPE_GRACE = 5.0
_SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


class _SessionEnded(Exception):
    """The process is gone or spoke out of protocol; the session must restart."""


class SessionClosed(SessionFailed):
    """The session was closed for good; a request must go to a new one."""


def sanitize_file_name(name: str) -> str:
    """The last path component of ``name``, without control characters.

    ``../../etc/passwd`` becomes ``passwd`` and ``C:\\x\\y.csv`` becomes ``y.csv``;
    a name that leaves nothing usable raises ``InvalidFileName``.
    """
    cleaned = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    base = cleaned.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", "..") or len(base.encode()) > 255:
        raise InvalidFileName(f"file name {name!r} cannot be placed in /mnt/data")
    return base


class CodeSession:
    def __init__(self, sandbox: Sandbox, launch: Launch, guard: MemoryGuard | None = None) -> None:
        self._sandbox = sandbox
        self._launch = launch
        self._guard = guard or NoGuard(launch.limits.session_memory_mb * MIB)
        self._process: asyncio.subprocess.Process | None = None
        self._name = ""
        self._started_once = False
        self._stderr = bytearray()
        self._stderr_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> bool:
        """Start the process if it is not running; True when it ran before (a restart)."""
        async with self._lock:
            return await self._ensure_started()

    async def _ensure_started(self) -> bool:
        if self._closed:
            raise SessionClosed("the session was closed")
        if self.alive:
            return False
        await self._stop()
        restarted = self._started_once
        self._name = f"tl-{secrets.token_hex(8)}"
        spawn = await asyncio.to_thread(self._sandbox.spawn, self._launch, self._name)
        uid = self._launch.host_uid
        argv = list(spawn.argv)
        if uid is not None:
            # Drop to the session's uid with setpriv, not Popen's user=/group=: the
            # server's loop (uvloop) does not take those.
            argv = [_SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
        try:
            try:
                argv = await asyncio.to_thread(self._guard.wrap, self._name, argv)
            except OSError as exc:
                raise SessionFailed(f"the session's memory could not be bounded: {exc}") from exc
            async with fork_turn():
                self._process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                    start_new_session=True,
                    pass_fds=spawn.pass_fds,
                )
        except BaseException:
            # Not started: what the guard and the sandbox made for it goes now
            # (``_stop`` only cleans up after a process).
            await self._guard.release(self._name)
            await self._sandbox.cleanup(self._name)
            raise
        finally:
            for fd in spawn.pass_fds:
                os.close(fd)
        await self._guard.started(self._name, self._process.pid)
        self._stderr.clear()
        self._stderr_task = asyncio.create_task(self._drain_stderr(self._process))
        self._started_once = True
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                ready = await self._receive()
        except (TimeoutError, _SessionEnded) as exc:
            await self._stop()
            detail = self._stderr.decode(errors="replace").strip()
            raise SessionFailed(
                f"the {self._sandbox.name} sandbox did not start Python: {detail or exc}"
            ) from exc
        if not ready.get("ready"):
            await self._stop()
            raise SessionFailed(f"unexpected first message from the sandbox: {ready!r}")
        return restarted

    async def _drain_stderr(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while chunk := await process.stderr.read(65536):
            self._stderr += chunk
            del self._stderr[:-_STDERR_KEPT]

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        body = json.dumps(message).encode()
        try:
            self._process.stdin.write(_HEADER.pack(len(body)) + body)
            await self._process.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise _SessionEnded(str(exc)) from exc

    async def _receive(self) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        stdout = self._process.stdout
        try:
            (length,) = _HEADER.unpack(await stdout.readexactly(_HEADER.size))
            if length > self._launch.limits.max_reply_bytes:
                raise _SessionEnded(f"reply of {length} bytes is over the limit")
            message = json.loads(await stdout.readexactly(length))
        except (asyncio.IncompleteReadError, ValueError, RecursionError) as exc:
            raise _SessionEnded(str(exc)) from exc
        if not isinstance(message, dict):
            raise _SessionEnded("reply is not an object")
        return message

    async def _request(self, message: dict[str, Any], time_limit: float) -> dict[str, Any]:
        async with asyncio.timeout(time_limit):
            await self._send(message)
            return await self._receive()

    async def execute(self, code: str, time_limit: float | None = None) -> ExecutionResult:
        """Run ``code``; ``time_limit`` (seconds) defaults to the limits' timeout."""
        limit = time_limit if time_limit is not None else self._launch.limits.timeout_seconds
        async with self._lock:
            restarted = await self._ensure_started()
            kills = self._guard.kills(self._name)
            try:
                reply = await self._request({"op": "exec", "code": code}, limit)
            except TimeoutError:
                await self._stop()
                return ExecutionResult(
                    error=(
                        f"TimeoutError: the execution ran past {limit:g} seconds and was "
                        "stopped; the Python session was ended and its variables and "
                        "files are gone."
                    ),
                    timed_out=True,
                    restarted=restarted,
                )
            except asyncio.CancelledError:
                # The caller gave up (a cancelled run): the code may still run and its
                # reply would answer the next request, so the process goes.
                await self._stop()
                raise
            except _SessionEnded:
                out_of_memory = self._guard.kills(self._name) > kills
                code_or_signal = await self._stop()
                cause = self._out_of_memory() if out_of_memory else code_or_signal
                return ExecutionResult(
                    error=(
                        f"The Python session ended unexpectedly ({cause}); "
                        "its variables and files are gone."
                    ),
                    restarted=restarted,
                )
            try:
                result = _result(reply, restarted)
            except (KeyError, TypeError, ValueError, binascii.Error):
                # Only code inside the session can forge a frame; it loses the session.
                await self._stop()
                return ExecutionResult(
                    error=(
                        "The Python session sent a malformed reply and was ended; "
                        "its variables and files are gone."
                    ),
                    restarted=restarted,
                )
            if self._guard.kills(self._name) > kills:
                note = f"\n[a process of this session was killed: {self._out_of_memory()}]\n"
                result = replace(result, logs=result.logs + note)
            return result

    def _out_of_memory(self) -> str:
        limit = self._guard.limit_bytes // MIB
        return f"out of memory: its processes together reached the session's {limit} MiB"

    async def put_file(self, name: str, data: bytes) -> str:
        """Write ``data`` to ``/mnt/data/<sanitised name>``; returns that path."""
        safe = sanitize_file_name(name)
        payload = {"op": "put", "name": safe, "data": base64.b64encode(data).decode()}
        async with self._lock:
            await self._ensure_started()
            try:
                reply = await self._request(payload, self._launch.limits.timeout_seconds)
            except (TimeoutError, _SessionEnded) as exc:
                await self._stop()
                raise SessionFailed(f"the session ended while receiving {safe}") from exc
        if not reply.get("ok"):
            raise SessionFailed(str(reply.get("error")))
        return str(reply["path"])

    async def close(self) -> None:
        """End the process for good, after the request in progress (if any)."""
        self._closed = True
        async with self._lock:
            await self._stop()

    async def _stop(self) -> str:
        """Kill the process (and with it the sandbox); how it ended, in words."""
        process, self._process = self._process, None
        if process is None:
            return "not running"
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        # ``Process.wait()`` also waits for every pipe to reach its end, and a stdout
        # left unread (a reply abandoned half-way) pauses its reader for good: drain
        # what the dead process left, and never wait on the pipes forever.
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(_PIPE_GRACE):
                if process.stdout is not None:
                    while await process.stdout.read(65536):
                        pass
                if self._stderr_task is not None:
                    await self._stderr_task
                await process.wait()
        except (TimeoutError, OSError):
            logger.warning("a %s session's pipes stayed open after it ended", self._sandbox.name)
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            self._stderr_task = None
        await self._guard.release(self._name)
        await self._sandbox.cleanup(self._name)
        returncode = process.returncode if process.returncode is not None else -signal.SIGKILL
        if returncode < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-returncode).name}"
            return f"killed by signal {-returncode}"
        return f"exit status {returncode}"


def _result(reply: dict[str, Any], restarted: bool) -> ExecutionResult:
    """The reply as a result; a reply of the wrong shape raises (KeyError, TypeError…)."""
    if not isinstance(reply.get("logs", ""), str) or not isinstance(reply.get("files", []), list):
        raise TypeError("malformed reply")
    files = [
        OutputFile(
            name=str(entry["name"]),
            size=int(entry["size"]),
            data=None if entry.get("data") is None else base64.b64decode(entry["data"]),
        )
        for entry in reply.get("files", [])
    ]
    return ExecutionResult(
        logs=str(reply.get("logs", "")),
        images=[base64.b64decode(image) for image in reply.get("images", [])],
        files=files,
        error=None if reply.get("error") is None else str(reply["error"]),
        restarted=restarted,
    )
