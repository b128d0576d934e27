"""Executes one turn of a run: claim it, call the model, store what it made.

A turn ends in ``requires_action`` (the model called functions), ``completed``,
``incomplete`` (a token budget ran out), ``failed`` or ``expired``. While it
executes, the worker holds a lease on the run and renews it; if the lease is
lost or the run is cancelled, the turn's task is cancelled and the final write
is made shielded from that cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import stamp
from threadline.domain.run_status import COMPLETE, END_INCOMPLETE, REQUIRE_ACTION, RunStatus
from threadline.engine.context import Prepared, PromptTooLarge, prepare
from threadline.engine.events import Events
from threadline.engine.lifecycle import (
    Lifecycle,
    Move,
    RunExpired,
    TransitionRefused,
    WrongStatus,
    shielded,
)
from threadline.engine.output import TurnOutput
from threadline.engine.readahead import ReadAhead
from threadline.engine.tools import BuiltinCall, Toolbox, ToolScope
from threadline.models.base import (
    Finish,
    FunctionTool,
    ModelBackend,
    ModelError,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from threadline.observability.logs import run_context
from threadline.settings import Settings
from threadline.storage import runs as store
from threadline.storage.db import Database

log = logging.getLogger("threadline.engine")
S = RunStatus


class Executor:
    def __init__(
        self,
        db: Database,
        lifecycle: Lifecycle,
        backend: ModelBackend,
        settings: Settings,
        worker_id: str,
        toolbox: Toolbox | None = None,
    ) -> None:
        self.db = db
        self.toolbox = toolbox or Toolbox()
        self.lifecycle = lifecycle
        self.clock = lifecycle.clock
        self.bus = lifecycle.bus
        self.backend = backend
        self.settings = settings
        self.worker_id = worker_id
        self._counted_models: set[str] = set()

    def _lease_until(self) -> float:
        return self.clock.time() + self.settings.run_lease_seconds

    async def execute(self, run_id: str) -> None:
        """Claim the queued run and execute its turn (nothing if it is not queued)."""
        with run_context(run_id):
            await self._claim_and_execute(run_id)

    async def _claim_and_execute(self, run_id: str) -> None:
        seen: list[_Seen] = []

        async def read(conn: AsyncConnection, project: str, run: dict[str, Any]) -> Events:
            # With the claim (in its transaction, or just before its unlocked write):
            # the turn gets what it reads without a transaction of its own. Read
            # again if the unlocked write did not go through: the last read counts.
            seen.append(await _read_turn(conn, project, run, self.toolbox))
            return []

        try:
            claimed = await self.lifecycle.claim(run_id, self.worker_id, self._lease_until(), read)
        except asyncio.CancelledError:
            # Stopped as it claimed: hand the run back if the claim went through.
            await shielded(self._after_abort(run_id))
            raise
        except RunExpired:
            # It expired while it waited: it never started (no `started_at`).
            await _tolerate(self.lifecycle.expire(run_id))
            return
        except TransitionRefused as refused:
            log.debug("%s", refused)  # another worker has it, or it was cancelled
            return
        await self._execute_claimed(claimed.run, claimed.counted, seen[-1])

    async def claim_new(self, conn: AsyncConnection, project: str, run: dict[str, Any]) -> Claimed:
        """Store a new ``queued`` run already claimed, inside the transaction that
        creates it (a slot was free here): it skips the queue, and its turn one
        transaction of its own."""
        claimed, history = await self.lifecycle.claim_created(
            conn, project, run, self.worker_id, self._lease_until()
        )
        loaded = await self.toolbox.load(conn, project, run)
        return Claimed(claimed, _Seen(history, [], [], project, loaded))

    async def execute_claimed(self, claimed: Claimed) -> None:
        """Execute a run ``claim_new`` claimed, once its transaction committed."""
        await self._execute_claimed(claimed.run, Usage(), claimed.seen)

    async def _execute_claimed(self, run: dict[str, Any], counted: Usage, seen: _Seen) -> None:
        with run_context(run["id"], run["thread_id"], seen.project_id):  # on the turn's lines
            log.debug("turn started on %s", run["model"])
            await self._execute_turn(run, counted, seen)

    async def _execute_turn(self, run: dict[str, Any], counted: Usage, seen: _Seen) -> None:
        run_id = run["id"]
        if run.get("expires_at") is not None and run["expires_at"] <= stamp(self.clock):
            await _tolerate(self.lifecycle.expire(run_id))
            return
        current = asyncio.current_task()
        assert current is not None
        keeper = asyncio.create_task(self._keep_lease(run_id, current))
        try:
            await self._turn(run, counted, seen)
        except asyncio.CancelledError:
            await shielded(self._after_abort(run_id))
            raise
        except ModelError as exc:
            self.lifecycle.metrics.model_error(run.get("model"), exc.code)
            await self._fail(run_id, exc.code, exc.message)
        except Exception:
            log.exception("run %s failed", run_id)
            await self._fail(run_id, "server_error", "The server had an error executing the run.")
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(self, run_id: str, turn: asyncio.Task[Any]) -> None:
        """Renew the lease; stop the turn when the lease is lost or the run is no
        longer ours to run (cancelled, expired)."""
        interval = self.settings.run_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.write() as conn:
                    renewed = await store.renew_lease(
                        conn, run_id, self.worker_id, self._lease_until()
                    )
            except Exception as exc:
                # The database away for a moment (restarting): try again at the next
                # beat; if the lease lapses meanwhile, the sweeper's rules apply.
                log.warning("could not renew the lease of %s: %s", run_id, exc)
                continue
            if not renewed:
                turn.cancel()
                return

    async def _after_abort(self, run_id: str) -> None:
        """The turn was cancelled: finish a cancel, or hand the run back."""
        try:
            await self.lifecycle.hand_back(run_id, self.worker_id, work=_forget_unfinished)
        except WrongStatus as refused:
            if refused.current == S.CANCELLING:
                await _tolerate(self.lifecycle.finish_cancel(run_id))
        except TransitionRefused as refused:
            log.debug("%s", refused)

    async def _fail(self, run_id: str, code: str, message: str) -> None:
        await self._end(self.lifecycle.fail(run_id, code, message))

    async def _end(self, move: Awaitable[Move]) -> None:
        """Make a turn's last move; if the run was cancelled meanwhile, finish the
        cancel instead; if it expired or was taken over, leave it."""
        try:
            moved = await move
            log.debug("turn ended: %s", moved.run["status"])
        except WrongStatus as refused:
            if refused.current == S.CANCELLING:
                await _tolerate(self.lifecycle.finish_cancel(run_id=refused.run_id))
            else:
                log.info("%s", refused)
        except TransitionRefused as refused:
            log.info("%s", refused)

    async def _turn(self, run: dict[str, Any], counted: Usage, seen: _Seen) -> None:
        """The turn's model calls: while a call returns only built-in tool calls,
        execute them and call the model again (at most ``run_turn_model_calls``)."""
        run_id = run["id"]
        steps, own = seen.steps, seen.own
        limit = self.settings.run_turn_model_calls
        for call_no in range(limit):
            scopes = self.toolbox.scopes(
                run, seen.project_id, seen.loaded, steps, self._output_chars(run)
            )
            offered = self.toolbox.offers(scopes)
            prepared = await self._prepare(run, counted, seen.history, steps, own, offered)
            if prepared is None:
                return
            request = prepared.request
            last = call_no == limit - 1
            if last and call_no > 0:  # the bound: this call must answer
                request = dataclasses.replace(request, tool_choice="none")
            builtins = frozenset(tool.name for tool in offered)
            output = TurnOutput(
                run,
                self.db,
                self.bus,
                self.worker_id,
                run.get("tools") or [],
                builtins,
                functools.partial(self.toolbox.annotations, steps=steps),
                self.toolbox.parts(steps),
            )
            finish = await self._call_model(request, output)
            pending = output.builtin_calls()
            if pending:
                if last:
                    raise ModelError(
                        f"The model went on calling built-in tools after {limit} model calls."
                    )
                await self._execute_builtins(output, scopes, pending)
                if not output.calls():
                    await output.end_round(finish.usage)
                    counted = counted + finish.usage
                    async with self.db.read() as conn:
                        steps = await store.steps_of(conn, run_id)
                        own = await store.run_messages(conn, run_id)
                    continue
            await self._finish_turn(run_id, output, finish)
            return

    def _output_chars(self, run: dict[str, Any]) -> int:
        """Room for one built-in call's output: about a quarter of the model's
        context window (four characters a token)."""
        if not self.toolbox.enabled(run):
            return 0
        return max(1000, self.backend.context_window(run["model"]))

    async def _prepare(
        self,
        run: dict[str, Any],
        counted: Usage,
        history: list[dict[str, Any]],
        steps: list[dict[str, Any]],
        own: list[dict[str, Any]],
        offered: list[FunctionTool],
    ) -> Prepared | None:
        """The next model call's request; ``None`` when the run ended instead (a
        token budget is spent, or the conversation does not fit)."""
        run_id = run["id"]
        remaining_completion = _remaining(
            run.get("max_completion_tokens"), counted.completion_tokens
        )
        remaining_prompt = _remaining(run.get("max_prompt_tokens"), counted.prompt_tokens)
        if remaining_completion is not None and remaining_completion <= 0:
            await self._incomplete(run_id, "max_completion_tokens")
            return None
        try:
            args = (run, history, steps, own, self.backend, remaining_completion, remaining_prompt)
            if run["model"] in self._counted_models:
                return prepare(*args, offered, self.toolbox.replay)
            # The first count for a model may build its tokenizer (seconds): off
            # the loop, or every stream and lease renewal would stall meanwhile.
            prepared = await asyncio.to_thread(prepare, *args, offered, self.toolbox.replay)
            self._counted_models.add(run["model"])
            return prepared
        except PromptTooLarge as exc:
            if exc.budget == "max_prompt_tokens":
                await self._incomplete(run_id, "max_prompt_tokens")
            else:
                await self._fail(
                    run_id, "invalid_prompt", "The conversation does not fit the model's context."
                )
            return None

    async def _call_model(self, request: ModelRequest, output: TurnOutput) -> Finish:
        finish: Finish | None = None
        started = time.perf_counter()
        first: float | None = None
        stream = ReadAhead(self.backend.stream(request))
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    if first is None:
                        first = time.perf_counter() - started
                    await output.text(event.text)
                elif isinstance(event, ToolCallDelta):
                    if first is None:
                        first = time.perf_counter() - started
                    await output.tool_delta(event)
                else:
                    finish = event
            self.lifecycle.metrics.model_call(request.model, time.perf_counter() - started, first)
        finally:
            # Close the model's stream (and its HTTP response) now, not at GC.
            await stream.aclose()
        if finish is None:
            raise ModelError("The model stream ended without finishing.")
        return finish

    async def _execute_builtins(
        self,
        output: TurnOutput,
        scopes: dict[str, ToolScope],
        pending: list[tuple[int, str, str, str]],
    ) -> None:
        """Execute the model's built-in calls, in order; each call object goes into
        the tool step as it is made."""
        numbered: dict[str, int] = {}
        for index, call_id, kind, arguments in pending:
            scope = scopes[kind]
            position = scope.earlier_calls + numbered.get(kind, 0)
            numbered[kind] = numbered.get(kind, 0) + 1
            tool = self.toolbox.tools[kind]
            stream = functools.partial(output.builtin_progress, index)
            outcome = await tool.execute(scope, BuiltinCall(call_id, position, arguments, stream))
            await output.builtin_done_with(index, {**outcome.call, "id": call_id}, outcome.delta)

    async def _finish_turn(self, run_id: str, output: TurnOutput, finish: Finish) -> None:
        calls = output.calls()
        truncated = not calls and finish.reason == "length"
        move = REQUIRE_ACTION if calls else END_INCOMPLETE if truncated else COMPLETE

        def conclude(run: dict[str, Any]) -> None:
            if calls:
                run["required_action"] = {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {
                        "tool_calls": [
                            {
                                "id": c["id"],
                                "type": "function",
                                "function": {
                                    "name": c["function"]["name"],
                                    "arguments": c["function"]["arguments"],
                                },
                            }
                            for c in calls
                        ]
                    },
                }
            elif truncated:
                run["incomplete_details"] = {"reason": "max_completion_tokens"}

        await self._end(
            self.lifecycle.end_turn(
                move,
                run_id,
                self.worker_id,
                ended=output.finished(finish.usage, truncated=truncated),
                usage=finish.usage,
                change=conclude,
            )
        )

    async def _incomplete(self, run_id: str, reason: str) -> None:
        await self._end(self.lifecycle.end_incomplete(run_id, self.worker_id, reason))


@dataclass(frozen=True)
class _Seen:
    """What a turn reads as it claims its run (``loaded``: what each enabled
    built-in tool read for it)."""

    history: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    own: list[dict[str, Any]]
    project_id: str
    loaded: dict[str, Any]


@dataclass(frozen=True)
class Claimed:
    """A run claimed in its creating transaction, and what its turn reads."""

    run: dict[str, Any]
    seen: _Seen


async def _read_turn(
    conn: AsyncConnection, project: str, run: dict[str, Any], toolbox: Toolbox
) -> _Seen:
    history, own = await store.history_and_own(conn, run["thread_id"], run["id"])
    return _Seen(
        history=history,
        steps=await store.steps_of(conn, run["id"]),
        own=own,
        project_id=project,
        loaded=await toolbox.load(conn, project, run),
    )


def _remaining(budget: int | None, used: int) -> int | None:
    return None if budget is None else int(budget) - int(used)


async def _forget_unfinished(conn: AsyncConnection, _project: str, run: dict[str, Any]) -> Events:
    await store.delete_unfinished_output(conn, run["id"])
    run["started_at"] = run.get("started_at")
    return []


async def _tolerate(move: Awaitable[Move]) -> None:
    """Make ``move`` if it can still be made (another worker or the sweeper may have
    moved the run first)."""
    try:
        await move
    except TransitionRefused as refused:
        log.debug("%s", refused)
