"""What the model sees for one call of a run: instructions, the thread's messages
(truncated as the run asks), the run's own tool calls and their outputs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from threadline.models.base import (
    ChatMessage,
    FunctionTool,
    ModelBackend,
    ModelRequest,
    NamedToolChoice,
    ToolCall,
    ToolChoice,
)

DEFAULT_COMPLETION_RESERVE = 1024

Replay = Callable[[dict[str, Any], int], "tuple[str, str] | None"]
"""The arguments and output the model saw for a built-in's stored step call (the
run's how-manyth call of its type)."""


class PromptTooLarge(Exception):
    """Nothing but the newest message fits; ``budget`` says which limit was hit."""

    def __init__(self, budget: str) -> None:
        super().__init__(budget)
        self.budget = budget  # "max_prompt_tokens" or "context_window"


@dataclass(frozen=True)
class Prepared:
    request: ModelRequest
    prompt_tokens: int


def message_text(message: dict[str, Any]) -> str:
    parts: list[str] = []
    for part in message.get("content") or []:
        if part.get("type") == "text":
            parts.append(part["text"]["value"])
        elif part.get("type") == "image_file":
            parts.append(f"[image file {part['image_file']['file_id']}]")
        elif part.get("type") == "image_url":
            parts.append(f"[image {part['image_url']['url']}]")
    return "\n".join(parts)


def function_tools(tools: Sequence[dict[str, Any]]) -> list[FunctionTool]:
    return [
        FunctionTool(
            name=t["function"]["name"],
            description=t["function"].get("description"),
            parameters=t["function"].get("parameters"),
            strict=t["function"].get("strict"),
        )
        for t in tools
        if t.get("type") == "function"
    ]


def tool_choice_of(value: Any, offered: Sequence[FunctionTool] = ()) -> ToolChoice:
    if isinstance(value, dict):
        if value.get("type") == "function" and value.get("function"):
            return NamedToolChoice(value["function"]["name"])
        # A built-in forced by type ({"type": "file_search"}) while it is offered.
        if any(tool.name == value.get("type") for tool in offered):
            return NamedToolChoice(value["type"])
        return "auto"
    if value in ("none", "auto", "required"):
        return value  # type: ignore[no-any-return]
    return "auto"


def _relaxed(choice: ToolChoice, steps: Sequence[dict[str, Any]]) -> ToolChoice:
    """A forced call (``required`` or a named function) is forced once per run:
    after its outputs came back the model may answer, or it would call forever."""
    answered = any(s["type"] == "tool_calls" and s["status"] == "completed" for s in steps)
    if answered and (choice == "required" or isinstance(choice, NamedToolChoice)):
        return "auto"
    return choice


def run_outputs(
    steps: Sequence[dict[str, Any]],
    messages_by_id: dict[str, dict[str, Any]],
    replay: Replay | None = None,
) -> list[ChatMessage]:
    """The run's finished steps as conversation turns, in the order they happened
    (a built-in's calls as ``replay`` tells them)."""
    turns: list[ChatMessage] = []
    numbered: dict[str, int] = {}
    for step in steps:
        details = step["step_details"]
        if details["type"] == "message_creation":
            message = messages_by_id.get(details["message_creation"]["message_id"])
            if message is not None and message["status"] != "in_progress":
                turns.append(ChatMessage("assistant", message_text(message)))
            continue
        made: list[ToolCall] = []
        outputs: list[ChatMessage] = []
        for call in details["tool_calls"]:
            if call["type"] == "function":
                function = call["function"]
                made.append(ToolCall(call["id"], function["name"], function["arguments"]))
                if function["output"] is not None:
                    outputs.append(ChatMessage("tool", function["output"], tool_call_id=call["id"]))
                continue
            index = numbered.get(call["type"], 0)
            numbered[call["type"]] = index + 1
            seen = replay(call, index) if replay is not None else None
            if seen is not None:
                made.append(ToolCall(call["id"], call["type"], seen[0]))
                outputs.append(ChatMessage("tool", seen[1], tool_call_id=call["id"]))
        if made:
            turns.append(ChatMessage("assistant", None, tool_calls=tuple(made)))
            turns.extend(outputs)
    return turns


def prepare(
    run: dict[str, Any],
    history: Sequence[dict[str, Any]],
    steps: Sequence[dict[str, Any]],
    own_messages: Sequence[dict[str, Any]],
    backend: ModelBackend,
    remaining_completion: int | None,
    remaining_prompt: int | None,
    offered: Sequence[FunctionTool] = (),
    replay: Replay | None = None,
) -> Prepared:
    """The request for the run's next model call; ``offered`` are the built-ins it
    may call, ``replay`` tells their earlier calls."""
    model = run["model"]
    system = [ChatMessage("system", run["instructions"])] if run.get("instructions") else []
    tools = function_tools(run.get("tools") or []) + list(offered)
    tools_text = json.dumps([t.__dict__ for t in tools]) if tools else ""
    fixed = system + run_outputs(steps, {m["id"]: m for m in own_messages}, replay)
    thread = [
        ChatMessage(m["role"], message_text(m)) for m in history if m["status"] != "in_progress"
    ]
    strategy = run.get("truncation_strategy") or {"type": "auto"}
    auto = not (strategy.get("type") == "last_messages" and strategy.get("last_messages"))
    if not auto:
        thread = thread[-int(strategy["last_messages"]) :]

    window = backend.context_window(model)
    # Room kept for the answer while the prompt is fitted: what is left of the run's
    # completion budget, but never more than the default reserve; a budget larger
    # than the window is a budget for the whole run, not for this one call.
    reserve = min(DEFAULT_COMPLETION_RESERVE, window // 4)
    if remaining_completion is not None:
        reserve = min(reserve, remaining_completion)
    limit, budget = window - reserve, "context_window"
    if remaining_prompt is not None and remaining_prompt < limit:
        limit, budget = remaining_prompt, "max_prompt_tokens"

    cost = backend.count_tokens(model, fixed) + (
        backend.count_tokens(model, [ChatMessage("system", tools_text)]) if tools else 0
    )
    sizes = [backend.count_tokens(model, [m]) for m in thread]
    start = 0
    # `auto` drops the oldest messages to fit; `last_messages` keeps exactly the
    # messages asked for, and a run they do not fit ends (incomplete or failed).
    while auto and start < len(thread) and cost + sum(sizes[start:]) > limit:
        start += 1
    if cost + sum(sizes[start:]) > limit or (thread and start == len(thread)):
        raise PromptTooLarge(budget)
    kept = thread[start:]
    messages = system + kept + fixed[len(system) :]
    prompt_tokens = cost + sum(sizes[start:])
    max_tokens = None
    if remaining_completion is not None:  # what is left, capped by what the context holds
        max_tokens = min(remaining_completion, window - prompt_tokens)
    return Prepared(
        ModelRequest(
            model=model,
            messages=messages,
            tools=tools,
            tool_choice=_relaxed(tool_choice_of(run.get("tool_choice"), offered), steps),
            parallel_tool_calls=bool(run.get("parallel_tool_calls", True)),
            response_format=(
                run["response_format"] if isinstance(run.get("response_format"), dict) else None
            ),
            temperature=run.get("temperature"),
            top_p=run.get("top_p"),
            max_tokens=max_tokens,
        ),
        prompt_tokens,
    )
