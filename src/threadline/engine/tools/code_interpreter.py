"""The ``code_interpreter`` built-in: the model's Python runs in the thread's
sandboxed session (``threadline.sandbox``), one stateful session per thread.

Before the code runs, the run's files (``tool_resources.code_interpreter.file_ids``
of its assistant and thread, and message attachments for code_interpreter) are put
under ``/mnt/data/<filename>``. What the code writes there becomes a File of
purpose ``assistants_output``; figures become ``image`` outputs of the step and
``image_file`` parts of the next assistant message, and other files are
``file_path`` annotations where the message names them (``sandbox:/mnt/data/…``).

Errors of the code, timeouts and killed sessions are outputs the model reads; only
a server without a working sandbox fails the run, and then no code runs at all.

Sessions live in one worker's pool, but any worker may run a thread's next turn. The
database says which session the thread's code last ran in (``code_sessions``): a
worker whose own session of the thread is not that one (it never had one, or
another worker ran the thread since) ends its own and starts afresh, puts the
thread's files and the files earlier code saved (``code_outputs``) back in
``/mnt/data``, and tells the model its variables are gone. The files each call
produced are stored as it ends, so a turn resumed on any worker annotates them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import secrets
import socket
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.engine.tools import BuiltinCall, BuiltinTool, ToolOutcome, ToolScope
from threadline.models.base import FunctionTool, ModelError
from threadline.sandbox import (
    ExecutionResult,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    SessionPool,
    create_pool,
    sanitize_file_name,
)
from threadline.settings import Settings
from threadline.storage import code_sessions as bookkeeping
from threadline.storage import objects
from threadline.storage import runs as store
from threadline.storage.blobs import BlobMissingError, BlobStore
from threadline.storage.db import Database

_PROBE_GRACE = 30.0
"""How long closing waits for a sandbox probe still running."""
log = logging.getLogger(__name__)

DESCRIPTION = (
    "Run Python code in a stateful session (variables and files persist between calls "
    "of this conversation). numpy, pandas and matplotlib are installed; there is no "
    "network. The user's files are in /mnt/data; save files for the user to "
    "/mnt/data and refer to them as sandbox:/mnt/data/<name>. Print what you want to see."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The Python code to run."}},
    "required": ["input"],
    "additionalProperties": False,
}
RESTARTED = "The session was restarted; earlier variables and files are gone.\n"
RESTORED = (
    "The session was restarted; earlier variables are gone. The conversation's files "
    "and those earlier code saved are back in /mnt/data.\n"
)
LINK = re.compile(r"sandbox:/mnt/data/([^\s)\]\"'<>]+)")
_PRODUCED_KEPT = 10_000


@dataclass(frozen=True)
class Inputs:
    """The files a run's code sees in ``/mnt/data``: (file id, filename)."""

    files: tuple[tuple[str, str], ...]


class CodeInterpreter(BuiltinTool):
    type = "code_interpreter"

    def __init__(
        self, db: Database, blobs: BlobStore, settings: Settings, sandbox: Sandbox | None = None
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self._sandbox = sandbox  # known to work here: no probe at start
        self.pool: SessionPool | None = None
        self.unavailable: str | None = "the sandbox has not started"
        self._starting: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._placed: dict[str, set[str]] = {}  # by thread: file ids in /mnt/data
        self._ended: set[str] = set()  # threads whose session ended with the last call
        self._produced: OrderedDict[str, dict[str, str]] = OrderedDict()  # call -> name: file
        self._sessions: dict[str, str] = {}  # by thread: the id of this pool's session
        self._locks: dict[str, asyncio.Lock] = {}  # by thread: its code, or the reaper
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    # --- life of the sandbox -------------------------------------------------------

    def start(self) -> None:
        """Choose the sandbox in the background (a run that needs it waits)."""
        if self._starting is None:
            self._starting = asyncio.create_task(self._start(), name="sandbox-start")

    async def _start(self) -> None:
        try:
            self.pool = await create_pool(self.settings, self._sandbox)
        except SandboxError as exc:
            self.unavailable = str(exc)
            log.warning("code_interpreter is unavailable: %s", exc)
            return
        self.unavailable = None
        log.info("code_interpreter sandbox: %s", self.pool.sandbox.name)
        self._reaper = asyncio.create_task(self._reap(self.pool), name="sandbox-reaper")

    async def _reap(self, pool: SessionPool) -> None:
        """End idle sessions, and those whose thread moved or was deleted, forever."""
        period = max(1.0, min(60.0, self.settings.sandbox_idle_seconds / 4))
        while True:
            await asyncio.sleep(period)
            await pool.reap_idle()
            try:
                await self.end_moved()
            except (SQLAlchemyError, OSError) as exc:  # the database is away: next time
                # (asyncpg's refused connection, while PostgreSQL restarts, is an
                # OSError that SQLAlchemy does not wrap; the reaper must not end.)
                log.warning("could not check where code sessions run: %s", exc)

    async def end_moved(self) -> list[str]:
        """End this pool's sessions of threads whose code runs in another worker's
        session now, or that were deleted (on any process); the threads ended."""
        if self.pool is None:
            return []
        ended: list[str] = []
        gone: list[tuple[str, str | None]] = []
        for thread_id in list(self._sessions):
            async with self._lock(thread_id):
                mine = self._sessions.get(thread_id)
                if mine is None or thread_id not in self.pool:  # reaped, or ended
                    gone.append((thread_id, mine))
                    continue
                async with self.db.read() as conn:
                    recorded = await bookkeeping.session_of(conn, thread_id)
                if recorded != mine:
                    log.info("ending the code session of %s: it moved or was deleted", thread_id)
                    await self.pool.close(thread_id)
                    gone.append((thread_id, mine))
                    ended.append(thread_id)
        for thread_id, mine in gone:  # forgotten, unless a turn started a session since
            if self._sessions.get(thread_id) == mine:
                self._sessions.pop(thread_id, None)
                self._placed.pop(thread_id, None)
                self._locks.pop(thread_id, None)
        return ended

    def _lock(self, thread_id: str) -> asyncio.Lock:
        lock = self._locks.get(thread_id)
        if lock is None:
            lock = self._locks[thread_id] = asyncio.Lock()
        return lock

    async def ready(self) -> SessionPool:
        """The pool, once started; ``SandboxUnavailable`` when there is none."""
        if self._starting is None:
            self.start()
        assert self._starting is not None
        await asyncio.shield(self._starting)
        if self.pool is None:
            raise SandboxUnavailable(self.unavailable or "no sandbox")
        return self.pool

    async def close_thread(self, thread_id: str) -> None:
        """The thread was deleted: end its session."""
        self._placed.pop(thread_id, None)
        self._ended.discard(thread_id)
        self._sessions.pop(thread_id, None)
        self._locks.pop(thread_id, None)
        if self.pool is not None:
            await self.pool.close(thread_id)
        async with self.db.write() as conn:
            await bookkeeping.forget_thread(conn, thread_id)

    async def aclose(self) -> None:
        if self._starting is not None and not self._starting.done():
            # Let the probe finish (its session has its own time limits): cut short
            # while it spawns its process, the process's transport would be orphaned.
            await asyncio.wait({self._starting}, timeout=_PROBE_GRACE)
        for task in (self._reaper, self._starting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.pool is not None:
            await self.pool.aclose()

    # --- the tool --------------------------------------------------------------------

    async def load(self, conn: AsyncConnection, project_id: str, run: dict[str, Any]) -> Inputs:
        wanted: list[str] = []
        for repo, object_id in (
            (objects.assistants, run["assistant_id"]),
            (objects.threads, run["thread_id"]),
        ):
            owner = await repo.find(conn, project_id, object_id)
            resources = (owner or {}).get("tool_resources") or {}
            wanted.extend((resources.get("code_interpreter") or {}).get("file_ids") or [])
        for message in await store.thread_history(conn, run["thread_id"], run["id"]):
            for attachment in message.get("attachments") or []:
                kinds = {tool.get("type") for tool in attachment.get("tools") or []}
                if "code_interpreter" in kinds:
                    wanted.append(attachment["file_id"])
        found: list[tuple[str, str]] = []
        for file_id in dict.fromkeys(wanted):
            data = await objects.files.find(conn, project_id, file_id)
            if data is not None:
                found.append((file_id, str(data["filename"])))
        for call_id, made in (await bookkeeping.outputs_of_run(conn, run["id"])).items():
            self._remember(call_id, made)  # a resumed turn's calls, made anywhere
        return Inputs(tuple(found))

    def offer(self, scope: ToolScope) -> FunctionTool | None:
        return FunctionTool("code_interpreter", DESCRIPTION, PARAMETERS)

    async def execute(self, scope: ToolScope, call: BuiltinCall) -> ToolOutcome:
        code = _code(call.arguments)
        begun = {"id": call.id, "type": self.type, "code_interpreter": {"input": code}}
        if call.stream is not None:
            await call.stream({**begun, "code_interpreter": {"input": code, "outputs": []}})
        try:
            pool = await self.ready()
        except SandboxUnavailable as exc:
            raise ModelError(f"code_interpreter is unavailable on this server: {exc}") from exc
        thread_id = str(scope.run["thread_id"])
        result = await self._run(pool, thread_id, scope, code)
        outputs, produced = await self._keep(scope.project_id, result)
        if produced:
            async with self.db.write() as conn:
                await bookkeeping.add_outputs(
                    conn, thread_id, str(scope.run["id"]), call.id, produced
                )
        self._remember(call.id, produced)
        text = render(result, outputs, produced, scope.output_chars)
        whole = {**begun, "code_interpreter": {"input": code, "outputs": outputs}}
        numbered = [{"index": i, **o} for i, o in enumerate(outputs)]
        delta = {"id": call.id, "type": self.type, "code_interpreter": {"outputs": numbered}}
        return ToolOutcome(text, whole, delta if call.stream is not None else None)

    async def _run(
        self, pool: SessionPool, thread_id: str, scope: ToolScope, code: str
    ) -> ExecutionResult:
        async with self._lock(thread_id):
            return await self._run_held(pool, thread_id, scope, code)

    async def _run_held(
        self, pool: SessionPool, thread_id: str, scope: ToolScope, code: str
    ) -> ExecutionResult:
        async with self.db.read() as conn:
            recorded = await bookkeeping.session_of(conn, thread_id)
            saved = await bookkeeping.outputs_of_thread(conn, thread_id)
        if thread_id in pool and self._sessions.get(thread_id) != recorded:
            # Another worker ran this thread's code since: this session is behind.
            log.info("the code session of %s moved to another worker: starting afresh", thread_id)
            await pool.close(thread_id)
        fresh = thread_id not in pool
        restarted = thread_id in self._ended or (fresh and recorded is not None)
        if fresh:
            self._placed.pop(thread_id, None)
        placed = self._placed.setdefault(thread_id, set())
        inputs = scope.loaded if isinstance(scope.loaded, Inputs) else Inputs(())
        files = list(inputs.files)
        if restarted:
            files += [(file_id, name) for name, file_id in saved.items()]
        try:
            for file_id, filename in files:
                if file_id not in placed:
                    await pool.put_file(thread_id, filename, await self._read(file_id))
                    placed.add(file_id)
            result = await pool.execute(thread_id, code, self.settings.sandbox_timeout_seconds)
        except asyncio.CancelledError:
            self._placed.pop(thread_id, None)  # the session is ended: files go again
            raise
        except SandboxError as exc:
            self._ended.add(thread_id)
            self._placed.pop(thread_id, None)
            return ExecutionResult(error=f"The Python session failed: {exc}", restarted=restarted)
        ended = result.timed_out or (result.error or "").startswith("The Python session")
        if ended:
            self._ended.add(thread_id)
            self._placed.pop(thread_id, None)
        else:
            self._ended.discard(thread_id)
        if fresh or restarted or result.restarted:
            await self._record_session(thread_id)
        if restarted:
            result = replace(result, restarted=True, restored=bool(files))
        return result

    async def _record_session(self, thread_id: str) -> None:
        """This pool's new session of the thread is the one its code runs in now."""
        session_id = secrets.token_hex(16)
        async with self.db.write() as conn:
            await bookkeeping.record_session(conn, thread_id, session_id, self.holder, now())
        self._sessions[thread_id] = session_id

    async def _read(self, file_id: str) -> bytes:
        try:
            reader = await self.blobs.open(file_id)
        except BlobMissingError:
            return b""
        try:
            return b"".join([chunk async for chunk in reader.chunks()])
        finally:
            await reader.aclose()

    async def _keep(
        self, project_id: str, result: ExecutionResult
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Store the images and files the code made as Files; the step's outputs
        and the produced files by name."""
        outputs: list[dict[str, Any]] = []
        logs = result.logs + (result.error or "")
        if logs:
            outputs.append({"type": "logs", "logs": logs})
        for number, png in enumerate(result.images):
            file_id = await self._store_file(project_id, f"image-{number}.png", png)
            outputs.append({"type": "image", "image": {"file_id": file_id}})
        produced: dict[str, str] = {}
        for made in result.files:
            if made.data is not None:
                produced[made.name] = await self._store_file(project_id, made.name, made.data)
        return outputs, produced

    async def _store_file(self, project_id: str, name: str, data: bytes) -> str:
        file_id = new_id("file")
        size = await self.blobs.put(file_id, io.BytesIO(data), len(data) + 1)
        row = {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": now(),
            "expires_at": None,
            "filename": sanitize_file_name(name),
            "purpose": "assistants_output",
            "status": "processed",
            "status_details": None,
        }
        async with self.db.write() as conn:
            await objects.files.insert(conn, project_id, row, purpose="assistants_output")
        return file_id

    def _remember(self, call_id: str, produced: dict[str, str]) -> None:
        if produced:
            self._produced[call_id] = produced
            while len(self._produced) > _PRODUCED_KEPT:
                self._produced.popitem(last=False)

    def replay(self, call: dict[str, Any], index: int) -> tuple[str, str]:
        details = call["code_interpreter"]
        arguments = json.dumps({"input": details.get("input") or ""})
        outputs = details.get("outputs") or []
        logs = "".join(o.get("logs", "") for o in outputs if o.get("type") == "logs")
        images = sum(1 for o in outputs if o.get("type") == "image")
        text = logs or "(no output)"
        if images:
            text += f"\n[{images} image(s) shown to the user]"
        return arguments, text

    def annotate(self, text: str, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        produced: dict[str, str] = {}
        for call in calls:
            produced.update(self._produced.get(call["id"], {}))
        notes: list[dict[str, Any]] = []
        for match in LINK.finditer(text):
            name = match.group(1)
            if name not in produced:  # "…/out.csv." ending a sentence
                name = name.rstrip(".,;:!?")
            file_id = produced.get(name)
            if file_id is not None:
                end = match.start(1) + len(name)
                notes.append(
                    {
                        "type": "file_path",
                        "text": text[match.start() : end],
                        "start_index": match.start(),
                        "end_index": end,
                        "file_path": {"file_id": file_id},
                    }
                )
        return notes

    def parts(self, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "type": "image_file",
                "image_file": {"file_id": o["image"]["file_id"], "detail": "auto"},
            }
            for call in calls
            for o in call["code_interpreter"].get("outputs") or []
            if o.get("type") == "image"
        ]


def render(
    result: ExecutionResult,
    outputs: Sequence[dict[str, Any]],
    produced: dict[str, str],
    budget: int,
) -> str:
    """What the model reads of an execution."""
    text = "".join(o["logs"] for o in outputs if o["type"] == "logs")
    if budget and len(text) > budget:
        text = text[: budget // 2] + "\n…(output cut)…\n" + text[-budget // 2 :]
    lines = [RESTORED if result.restored else RESTARTED] if result.restarted else []
    lines.append(text or "(no output)")
    images = sum(1 for o in outputs if o["type"] == "image")
    if images:
        lines.append(f"\n[{images} image(s) shown to the user]")
    for name in produced:
        lines.append(f"\n[file saved: sandbox:/mnt/data/{name}]")
    for made in result.files:
        if made.data is None:
            lines.append(f"\n[file too large to give the user: {made.path}, {made.size} bytes]")
    return "".join(lines)


def _code(arguments: str) -> str:
    """The code of a call: ``{"input": …}``, or the arguments themselves when a
    model wrote the code bare."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, dict):
        for key in ("input", "code"):
            if isinstance(parsed.get(key), str):
                return str(parsed[key])
    return ""
