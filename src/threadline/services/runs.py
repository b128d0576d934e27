"""Runs: create (also with a new thread), retrieve, list, modify, cancel, submit
tool outputs, and the run steps. Execution itself is the engine's."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.domain.clock import now, stamp
from threadline.domain.ids import new_id
from threadline.domain.pages import Page, PageParams
from threadline.domain.run_status import RunStatus
from threadline.engine.events import EventBus, Events
from threadline.engine.executor import Claimed, Executor
from threadline.engine.lifecycle import Lifecycle, TransitionRefused, settle_usage
from threadline.errors import (
    InvalidRequestError,
    NotFoundError,
    RunNotWaitingError,
    ThreadBusyError,
)
from threadline.models.base import ModelBackend
from threadline.queue.base import RunQueue
from threadline.schemas.run import (
    CreateRunRequest,
    CreateThreadAndRunRequest,
    ModifyRunRequest,
    RunOptions,
    SubmitToolOutputsRequest,
)
from threadline.schemas.thread import CreateThreadRequest
from threadline.schemas.tools import dump_response_format
from threadline.services import assistants, messages
from threadline.services.references import References
from threadline.services.threads import ThreadService
from threadline.services.threads import repo as thread_repo
from threadline.settings import Settings
from threadline.storage import run_creates
from threadline.storage import runs as store
from threadline.storage.db import Database

S = RunStatus
Make = Callable[[AsyncConnection], Awaitable[tuple[dict[str, Any], Events]]]


class RunService:
    def __init__(
        self,
        db: Database,
        refs: References,
        threads: ThreadService,
        lifecycle: Lifecycle,
        queue: RunQueue,
        executor: Executor,
        backend: ModelBackend,
        settings: Settings,
    ) -> None:
        self.db = db
        self.refs = refs
        self.threads = threads
        self.lifecycle = lifecycle
        self.bus: EventBus = lifecycle.bus
        self.queue = queue
        self.executor = executor
        self.backend = backend
        self.settings = settings

    # --- creation -----------------------------------------------------------------

    def _new_run(
        self,
        thread_id: str,
        req: RunOptions,
        assistant: dict[str, Any] | None,
        additional_instructions: str | None = None,
    ) -> dict[str, Any]:
        """The new run, from ``req`` and its ``assistant`` (``None``: the project has
        no such assistant, a 404)."""
        if assistant is None:
            raise NotFoundError.for_object("assistant", req.assistant_id, "assistant_id")
        tools = (
            [t.model_dump(exclude_none=True) for t in req.tools]
            if req.tools is not None
            else assistant["tools"]
        )
        tool_choice: Any = req.tool_choice if req.tool_choice is not None else "auto"
        if not isinstance(tool_choice, str):
            tool_choice = tool_choice.model_dump(exclude_none=True)
            _check_named_tool(tool_choice, tools)
        instructions = (
            req.instructions if req.instructions is not None else assistant["instructions"]
        )
        instructions = "\n\n".join(p for p in (instructions, additional_instructions) if p)
        created = stamp(self.lifecycle.clock)
        pick = _first_set
        run: dict[str, Any] = {
            "id": new_id("run"),
            "object": "thread.run",
            "created_at": created,
            "thread_id": thread_id,
            "assistant_id": assistant["id"],
            "status": str(S.QUEUED),
            "required_action": None,
            "last_error": None,
            "expires_at": created + self.settings.run_expires_seconds,
            "started_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "completed_at": None,
            "incomplete_details": None,
            "model": self.backend.resolve_model(req.model or assistant["model"]),
            "instructions": instructions,
            "tools": tools,
            "metadata": req.metadata or {},
            "usage": None,
            "temperature": pick(req.temperature, assistant.get("temperature"), 1.0),
            "top_p": pick(req.top_p, assistant.get("top_p"), 1.0),
            "max_prompt_tokens": req.max_prompt_tokens,
            "max_completion_tokens": req.max_completion_tokens,
            "truncation_strategy": (
                req.truncation_strategy.model_dump()
                if req.truncation_strategy is not None
                else {"type": "auto", "last_messages": None}
            ),
            "tool_choice": tool_choice,
            "parallel_tool_calls": req.parallel_tool_calls,
            "response_format": pick(
                dump_response_format(req.response_format), assistant.get("response_format"), "auto"
            ),
            "reasoning_effort": pick(req.reasoning_effort, assistant.get("reasoning_effort")),
        }
        return run

    async def _start(self, project: str, make: Make) -> dict[str, Any]:
        """Create a queued run in one transaction (``make`` builds it, and returns
        it with the events that go before the run's own) and have it executed.
        When this process has a free execution slot, the run is claimed in that
        same transaction (stored already started) and starts at once; otherwise it
        is enqueued. Either way the caller gets the run as created (``queued``)."""
        slot = self.queue.reserve()
        claimed: Claimed | None = None
        deferred = False
        try:
            async with self.db.write() as conn:
                run, events = await make(conn)
                events = [*events, ("thread.run.created", run), ("thread.run.queued", run)]
                if slot is not None:
                    claimed = await self.executor.claim_new(conn, project, run)
                else:
                    await run_creates.insert_idle(conn, project, run)
                    deferred = await self.queue.enqueue_in(conn, run["id"])
                    if deferred:
                        # Before the commit makes the job visible: a worker's events
                        # for the run come after these. (Published and then rolled
                        # back, they are a stream nobody knows the run id of.)
                        await self.lifecycle.publish(run["id"], events)
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        self.lifecycle.metrics.run_reached(str(S.QUEUED), run["model"])
        if deferred:
            return run
        # The run is stored: it is executed even if its first events cannot be
        # published (the event bus unreachable), never left queued with no job.
        if claimed is None:
            try:
                await self.lifecycle.publish(run["id"], events)
            finally:
                await self.queue.enqueue(run["id"])
            return run
        assert slot is not None
        events.append(("thread.run.in_progress", claimed.run))
        self.lifecycle.metrics.run_reached(str(S.IN_PROGRESS), run["model"])
        try:
            await self.lifecycle.publish(run["id"], events)
        finally:
            slot.start(run["id"], functools.partial(self.executor.execute_claimed, claimed))
        # Let the turn send its model request before this request's response is
        # built: the response's work then overlaps the model's first-token wait.
        await asyncio.sleep(0)
        return run

    async def create(self, project: str, thread_id: str, req: CreateRunRequest) -> dict[str, Any]:
        async def make(conn: AsyncConnection) -> tuple[dict[str, Any], Events]:
            # The thread locked, its active run and the assistant: one statement on
            # PostgreSQL, where the run's INSERT checks the thread's runs again.
            opened = await run_creates.open_thread(conn, project, thread_id, req.assistant_id)
            if opened.active_run is not None:
                raise ThreadBusyError.for_thread(thread_id, opened.active_run)
            thread = opened.thread
            attached = False
            for index, extra in enumerate(req.additional_messages or []):
                await messages.check_message_files(
                    self.refs, conn, project, extra, f"additional_messages[{index}]."
                )
                attached |= await self.refs.attach(conn, project, thread, extra.attachments)
                await messages.repo.insert(
                    conn, project, messages.new_message(thread_id, extra), thread_id=thread_id
                )
            if attached:
                await thread_repo.replace(conn, project, thread)
            run = self._new_run(thread_id, req, opened.assistant, req.additional_instructions)
            return run, []

        return await self._start(project, make)

    async def create_thread_and_run(
        self, project: str, req: CreateThreadAndRunRequest
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        thread_req = req.thread or CreateThreadRequest()
        if req.tool_resources is not None and thread_req.tool_resources is None:
            thread_req = thread_req.model_copy(update={"tool_resources": req.tool_resources})
        thread: dict[str, Any] = {}

        async def make(conn: AsyncConnection) -> tuple[dict[str, Any], Events]:
            thread.update(await self.threads.create_in(conn, project, thread_req, "thread."))
            assistant = await assistants.repo.find(conn, project, req.assistant_id)
            run = self._new_run(thread["id"], req, assistant)
            return run, [("thread.created", thread)]

        run = await self._start(project, make)
        return thread, run

    # --- reading ------------------------------------------------------------------

    async def retrieve(self, project: str, thread_id: str, run_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            await thread_repo.get(conn, project, thread_id)
            return await store.runs.get(conn, project, run_id, thread_id=thread_id)

    async def list(self, project: str, thread_id: str, params: PageParams) -> Page:
        async with self.db.read() as conn:
            await thread_repo.get(conn, project, thread_id)
            return await store.runs.page(conn, project, params, thread_id=thread_id)

    async def list_steps(
        self, project: str, thread_id: str, run_id: str, params: PageParams
    ) -> Page:
        async with self.db.read() as conn:
            await thread_repo.get(conn, project, thread_id)
            await store.runs.get(conn, project, run_id, thread_id=thread_id)
            return await store.steps.page(conn, project, params, run_id=run_id)

    async def retrieve_step(
        self, project: str, thread_id: str, run_id: str, step_id: str
    ) -> dict[str, Any]:
        async with self.db.read() as conn:
            await thread_repo.get(conn, project, thread_id)
            await store.runs.get(conn, project, run_id, thread_id=thread_id)
            return await store.steps.get(conn, project, step_id, run_id=run_id)

    # --- changes ------------------------------------------------------------------

    async def modify(
        self, project: str, thread_id: str, run_id: str, req: ModifyRunRequest
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            await thread_repo.get(conn, project, thread_id)
            await store.runs.get(conn, project, run_id, thread_id=thread_id)
            row = await store.lock_run(conn, run_id)
            run = dict(row.data)
            if "metadata" in req.model_fields_set:
                run["metadata"] = req.metadata or {}
            return await store.save_run(conn, run, row.status)

    async def cancel(self, project: str, thread_id: str, run_id: str) -> dict[str, Any]:
        run = await self.retrieve(project, thread_id, run_id)
        try:
            moved = await self.lifecycle.cancel(run_id)
        except TransitionRefused:
            run = await self.retrieve(project, thread_id, run_id)  # 404 if it is gone
            raise InvalidRequestError(
                f"Cannot cancel run with status '{run['status']}'.", param="run_id"
            ) from None
        if not await self.queue.abort(run_id) and RunStatus(run["status"]) != S.IN_PROGRESS:
            # Nothing is executing it: the cancel is complete at once.
            with contextlib.suppress(TransitionRefused):
                await self.lifecycle.finish_cancel(run_id)
        return moved.run

    async def submit_tool_outputs(
        self, project: str, thread_id: str, run_id: str, req: SubmitToolOutputsRequest
    ) -> dict[str, Any]:
        run = await self.retrieve(project, thread_id, run_id)
        if run["status"] != S.REQUIRES_ACTION:
            raise RunNotWaitingError(
                f'Runs in status "{run["status"]}" do not accept tool outputs.',
                param="run_id",
            )
        outputs = _outputs_by_id(req, run)

        async def record(conn: AsyncConnection, project_id: str, current: dict[str, Any]) -> Events:
            _outputs_by_id(req, current)  # the locked row is what counts
            events: Events = []
            for step in await store.steps_of(conn, run_id):
                if step["type"] != "tool_calls" or step["status"] != "in_progress":
                    continue
                for call in step["step_details"]["tool_calls"]:
                    if call["id"] in outputs:
                        call["function"]["output"] = outputs[call["id"]]
                await settle_usage(conn, run_id, step)
                step["status"] = "completed"
                step["completed_at"] = now()
                await store.save_step(conn, project_id, step)
                events.append(("thread.run.step.completed", step))
            return events

        try:
            moved = await self.lifecycle.resume(run_id, record)
        except TransitionRefused:
            raise RunNotWaitingError(
                "The run stopped waiting for tool outputs before they arrived.", param="run_id"
            ) from None
        await self.queue.enqueue(run_id)
        return moved.run


def _first_set(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _check_named_tool(choice: dict[str, Any], tools: list[dict[str, Any]]) -> None:
    if choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise InvalidRequestError(
                "Missing required parameter: 'tool_choice.function'.",
                param="tool_choice.function",
                code="missing_required_parameter",
            )
        if not any(t.get("type") == "function" and t["function"]["name"] == name for t in tools):
            raise InvalidRequestError(
                f"Invalid 'tool_choice': function '{name}' is not among the run's tools.",
                param="tool_choice",
                code="invalid_value",
            )
    elif not any(t.get("type") == choice.get("type") for t in tools):
        raise InvalidRequestError(
            f"Invalid 'tool_choice': tool '{choice.get('type')}' is not among the run's tools.",
            param="tool_choice",
            code="invalid_value",
        )


def _outputs_by_id(req: SubmitToolOutputsRequest, run: dict[str, Any]) -> dict[str, str]:
    required = run.get("required_action") or {}
    expected = [c["id"] for c in required.get("submit_tool_outputs", {}).get("tool_calls", [])]
    ids = [o.tool_call_id for o in req.tool_outputs]
    given = [i for i in ids if i is not None]
    if len(given) != len(ids):  # optional in the spec; without it an output matches no call
        index = ids.index(None)
        raise InvalidRequestError(
            f"Missing required parameter: 'tool_outputs[{index}].tool_call_id'.",
            param=f"tool_outputs[{index}].tool_call_id",
            code="missing_required_parameter",
        )
    if len(set(given)) != len(given):
        raise InvalidRequestError(
            "Invalid 'tool_outputs': each tool call id may appear only once.",
            param="tool_outputs",
            code="invalid_value",
        )
    unknown = sorted(set(given) - set(expected))
    if unknown:
        raise InvalidRequestError(
            f"Invalid 'tool_outputs': no tool call with id '{unknown[0]}' is waiting for output.",
            param="tool_outputs",
            code="invalid_value",
        )
    missing = [i for i in expected if i not in set(given)]
    if missing:
        raise InvalidRequestError(
            f"Expected tool outputs for call_ids {expected}, got {given}.",
            param="tool_outputs",
            code="invalid_value",
        )
    return dict(zip(given, (o.output for o in req.tool_outputs), strict=True))
