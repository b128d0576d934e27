"""The engine's built-in tool loop, with a built-in defined here: the turn
executes built-in calls itself, records them as a step, and calls the model again."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from threadline.engine.executor import Executor
from threadline.engine.tools import BuiltinCall, BuiltinTool, Toolbox, ToolOutcome, ToolScope
from threadline.models.base import FunctionTool
from threadline.schemas.run import SubmitToolOutputsRequest

SEARCH = {"type": "file_search"}


class Lookup(BuiltinTool):
    """Answers every query with a fixed line; ``gate``, when given, holds each call."""

    type = "file_search"

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.started = asyncio.Event()
        self.seen: list[tuple[BuiltinCall, ToolScope]] = []

    def offer(self, scope: ToolScope) -> FunctionTool:
        return FunctionTool("file_search", "Search the files.", {"type": "object"})

    async def execute(self, scope: ToolScope, call: BuiltinCall) -> ToolOutcome:
        self.seen.append((call, scope))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        query = json.loads(call.arguments).get("query", "")
        said = f"found: {query}"
        return ToolOutcome(said, {"type": "file_search", "file_search": {"said": said}})

    def replay(self, call: dict[str, Any], index: int) -> tuple[str, str]:
        return "{}", str(call["file_search"]["said"])


def _with(kit: Any, tool: BuiltinTool, **settings: Any) -> Executor:
    return Executor(
        kit.db,
        kit.lifecycle,
        kit.executor.backend,
        kit.settings.model_copy(update=settings),
        "wrk_test",
        Toolbox.of([tool]),
    )


def _search(query: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "file_search", "arguments": {"query": query}}]}


async def test_a_builtin_call_is_executed_and_the_model_called_again(kit: Any) -> None:
    tool = Lookup()
    executor = _with(kit, tool)
    run = await kit.new_run(
        {**_search("tides"), "prompt_tokens": 10, "completion_tokens": 3},
        {"text": "High tide at noon.", "prompt_tokens": 20, "completion_tokens": 5},
        tools=[SEARCH],
    )
    await executor.execute(run["id"])
    row = await kit.row(run["id"])
    assert row.status == "completed"
    assert row.data["required_action"] is None
    assert row.data["usage"] == {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}
    tool_step, message_step = await kit.steps(run["id"])
    assert (tool_step["type"], tool_step["status"]) == ("tool_calls", "completed")
    [call] = tool_step["step_details"]["tool_calls"]
    assert call["type"] == "file_search"
    assert call["id"].startswith("call_")
    assert tool_step["usage"]["total_tokens"] == 13
    assert message_step["usage"]["total_tokens"] == 25
    [message] = await kit.messages(run["id"])
    assert message["content"][0]["text"]["value"] == "High tide at noon."
    # The second model call read the search's output (told again from the step).
    last = executor.backend.requests[-1]  # type: ignore[attr-defined]
    assert [m.content for m in last.messages if m.role == "tool"] == ["found: tides"]
    assert [t.name for t in last.tools] == ["file_search"]
    [(seen, scope)] = tool.seen
    assert (seen.index, scope.project_id) == (0, kit.project)
    names = await kit.event_names(run["id"])
    assert names.count("thread.run.step.created") == 2
    assert names.count("thread.run.step.completed") == 2
    assert names.count("thread.run.step.delta") == 1  # the executed call, whole
    assert "thread.run.requires_action" not in names


async def test_calls_are_numbered_across_the_run_and_replayed(kit: Any) -> None:
    tool = Lookup()
    executor = _with(kit, tool)
    run = await kit.new_run(_search("one"), _search("two"), "Both.", tools=[SEARCH])
    await executor.execute(run["id"])
    assert await kit.status(run["id"]) == "completed"
    assert [call.index for call, _ in tool.seen] == [0, 1]
    last = executor.backend.requests[-1]  # type: ignore[attr-defined]
    assert [m.content for m in last.messages if m.role == "tool"] == ["found: one", "found: two"]


async def test_the_model_calls_per_turn_are_bounded(kit: Any) -> None:
    executor = _with(kit, Lookup(), run_turn_model_calls=3)
    run = await kit.new_run(*[_search(str(n)) for n in range(5)], "never", tools=[SEARCH])
    await executor.execute(run["id"])
    assert await kit.status(run["id"]) == "completed"
    steps = await kit.steps(run["id"])
    assert [s["type"] for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    assert executor.backend.requests[-1].tool_choice == "none"  # type: ignore[attr-defined]
    assert len(executor.backend.requests) == 3  # type: ignore[attr-defined]


async def test_a_forced_builtin_is_called_once_then_the_model_answers(kit: Any) -> None:
    tool = Lookup()
    executor = _with(kit, tool)
    run = await kit.new_run(tools=[SEARCH], tool_choice={"type": "file_search"})
    await executor.execute(run["id"])
    assert await kit.status(run["id"]) == "completed"
    assert len(tool.seen) == 1
    [message] = await kit.messages(run["id"])
    assert message["content"][0]["text"]["value"].startswith("You said")


async def test_builtin_and_function_calls_together_wait_for_the_functions(kit: Any) -> None:
    executor = _with(kit, Lookup())
    run = await kit.new_run(
        {
            "tool_calls": [
                {"name": "file_search", "arguments": {"query": "q"}},
                {"name": "get_weather", "arguments": {}},
            ]
        },
        "ok",
        tools=[SEARCH, {"type": "function", "function": {"name": "get_weather"}}],
    )
    await executor.execute(run["id"])
    row = await kit.row(run["id"])
    assert row.status == "requires_action"
    [waiting] = row.data["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert waiting["function"]["name"] == "get_weather"
    [step] = await kit.steps(run["id"])
    assert [c["type"] for c in step["step_details"]["tool_calls"]] == ["file_search", "function"]
    req = SubmitToolOutputsRequest.model_validate(
        {"tool_outputs": [{"tool_call_id": waiting["id"], "output": "sunny"}]}
    )
    await kit.runs.submit_tool_outputs(kit.project, run["thread_id"], run["id"], req)
    await executor.execute(run["id"])
    assert await kit.status(run["id"]) == "completed"


async def test_cancelling_during_a_search_ends_the_run_cancelled(kit: Any) -> None:
    tool = Lookup(gate=asyncio.Event())  # never opened: the search hangs
    executor = _with(kit, tool)
    run = await kit.new_run(_search("slow"), "never", tools=[SEARCH])
    turn = asyncio.create_task(executor.execute(run["id"]))
    await tool.started.wait()
    await kit.runs.cancel(kit.project, run["thread_id"], run["id"])
    turn.cancel()  # what the queue's abort does
    await asyncio.gather(turn, return_exceptions=True)
    row = await kit.row(run["id"])
    assert (row.status, row.lease_owner) == ("cancelled", None)
    [step] = await kit.steps(run["id"])
    assert step["status"] == "cancelled"
    assert await kit.messages(run["id"]) == []
