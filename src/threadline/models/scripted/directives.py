"""Scripting the model from the conversation: a user message ``{"scripted": [...]}``.

Which step a model call plays is counted from the conversation itself (the assistant
messages since the directive), so the same conversation always gives the same step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from threadline.models.base import ChatMessage, ModelError, ModelRequest, NamedToolChoice
from threadline.models.scripted.steps import (
    ScriptedCall,
    Step,
    TextStep,
    ToolCallsStep,
    parse_step,
)

DIRECTIVE_KEY = "scripted"


def directive(*steps: Mapping[str, Any] | str) -> str:
    """The user message content that scripts the next model calls, in order."""
    return json.dumps({DIRECTIVE_KEY: list(steps)}, ensure_ascii=False)


# ----------------------------------------------------------------------- choosing


def _last_user_index(messages: Sequence[ChatMessage]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return index
    return None


def directive_steps(messages: Sequence[ChatMessage]) -> tuple[list[Any], int] | None:
    """The raw steps of the latest user message's directive and the step to play.

    ``None`` when that message is not a directive. Raises ``ValueError`` when it
    is one whose ``"scripted"`` value is not a list.
    """
    index = _last_user_index(messages)
    if index is None:
        return None
    content = (messages[index].content or "").strip()
    if not content.startswith("{"):
        return None
    try:
        document = json.loads(content)
    except ValueError:
        return None
    if not isinstance(document, dict) or DIRECTIVE_KEY not in document:
        return None
    steps = document[DIRECTIVE_KEY]
    if not isinstance(steps, list):
        raise ValueError(f'"{DIRECTIVE_KEY}" must be a list of steps')
    played = sum(
        1
        for message in messages[index + 1 :]
        if message.role == "assistant" and (message.content or message.tool_calls)
    )
    return steps, played


def default_step(request: ModelRequest) -> Step:
    """What the backend does with no directive (deterministic)."""
    choice = request.tool_choice
    index = _last_user_index(request.messages)
    said = (request.messages[index].content or "") if index is not None else ""
    if isinstance(choice, NamedToolChoice):
        return ToolCallsStep([_forced_call(request, choice.name, said)])
    if choice == "required" and request.tools:
        return ToolCallsStep([_forced_call(request, request.tools[0].name, said)])
    return TextStep(f"You said: {said}")


def _forced_call(request: ModelRequest, name: str, said: str) -> ScriptedCall:
    """A forced call: empty arguments, or, for a tool that takes a ``query``
    (file_search), what the user said."""
    tool = next((t for t in request.tools if t.name == name), None)
    properties = ((tool.parameters or {}).get("properties") or {}) if tool else {}
    return ScriptedCall(name, {"query": said} if "query" in properties else {})


def scripted_step(request: ModelRequest) -> Step:
    """The step the conversation dictates: its directive's, else the default.

    Raises ``ModelError`` (``invalid_prompt``) for a malformed directive.
    """
    try:
        found = directive_steps(request.messages)
        if found is None:
            return default_step(request)
        steps, played = found
        if played < len(steps):
            return parse_step(steps[played])
        last = parse_step(steps[-1]) if steps else None
        return last if isinstance(last, TextStep) else TextStep("done")
    except ValueError as exc:
        raise ModelError(f"Invalid scripted directive: {exc}", "invalid_prompt") from exc
