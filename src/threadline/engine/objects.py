"""Builders for the objects a run produces: run steps, assistant messages, deltas."""

from __future__ import annotations

from typing import Any

from threadline.domain.clock import now
from threadline.domain.ids import new_id
from threadline.models.base import Usage


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def new_step(run: dict[str, Any], step_details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("step"),
        "object": "thread.run.step",
        "created_at": now(),
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "run_id": run["id"],
        "type": step_details["type"],
        "status": "in_progress",
        "step_details": step_details,
        "last_error": None,
        "expired_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "metadata": {},
        "usage": None,
    }


def message_creation_details(message_id: str) -> dict[str, Any]:
    return {"type": "message_creation", "message_creation": {"message_id": message_id}}


def tool_calls_details(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "tool_calls", "tool_calls": calls}


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments, "output": None},
    }


def new_assistant_message(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("message"),
        "object": "thread.message",
        "created_at": now(),
        "thread_id": run["thread_id"],
        "status": "in_progress",
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
        "role": "assistant",
        "content": [],
        "assistant_id": run["assistant_id"],
        "run_id": run["id"],
        "attachments": [],
        "metadata": {},
    }


def text_content(
    text: str, annotations: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"value": text, "annotations": annotations or []}}]


def message_delta(
    message_id: str,
    text: str,
    *,
    first: bool,
    annotations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A text delta; ``annotations`` are those it completes, each with its
    ``index`` among the message's annotations."""
    part: dict[str, Any] = {"index": 0, "type": "text", "text": {"value": text}}
    if first or annotations:
        part["text"]["annotations"] = annotations or []
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": [part]}}


def parts_delta(message_id: str, parts: list[dict[str, Any]], first: int) -> dict[str, Any]:
    """Content parts after the text (images), numbered from ``first``."""
    content = [{"index": first + i, **part} for i, part in enumerate(parts)]
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": content}}


def tool_call_delta(
    step_id: str, index: int, call_id: str | None, name: str | None, arguments: str
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "type": "function"}
    function: dict[str, Any] = {"arguments": arguments}
    if call_id is not None:
        call["id"] = call_id
        function = {"name": name or "", "arguments": arguments, "output": None}
    call["function"] = function
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
    }


def builtin_call_delta(step_id: str, index: int, call: dict[str, Any]) -> dict[str, Any]:
    """A built-in call, whole, as a step delta (it is streamed once executed)."""
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [{"index": index, **call}]}},
    }
