"""Planning one local model call: the prompt, the tool mode, and what the call
policy needs to judge a call (earlier calls, the question, the conversation's text)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from threadline.models.base import FunctionTool, ModelError, ModelRequest
from threadline.models.local.policy import FILE_SEARCH, refers_to_documents
from threadline.models.local.prompt import (
    json_instruction,
    last_question,
    load_arguments,
    render_answer,
    render_chatml,
)

Mode = Literal["text", "auto", "forced"]


@dataclass(frozen=True)
class Plan:
    """How to run one request: the prompt, the mode, and what the call policy needs."""

    prompt: str
    mode: Mode
    tools: tuple[FunctionTool, ...]
    json_mode: bool
    after_tool_results: bool
    """The conversation ends with tool results: the model should now answer."""
    answer_prompt: str | None
    """The prompt for a text answer, where it differs from ``prompt``."""
    previous_calls: frozenset[tuple[str, str]]
    turn_functions: frozenset[str]
    """Functions already called since the last user message."""
    question: str
    """The last user message."""
    follows_up: bool
    """The assistant has answered before in this conversation: the last user message
    goes on from there ("And Microsoft?")."""
    context: str
    """The conversation's text without tool results, to check arguments against."""
    results: tuple[str, ...] = ()
    """The tool results since the last user message (their contents)."""
    search_query: str | None = None
    """A search to make without decoding: the request points at the user's
    documents and file_search is offered (the question is the query)."""


def plan_request(request: ModelRequest) -> Plan:
    tools: tuple[FunctionTool, ...] = tuple(request.tools)
    choice = request.tool_choice
    mode: Mode = "auto" if tools else "text"
    if choice == "none" or not tools:
        tools, mode = (), "text"
    elif choice == "required":
        mode = "forced"
    elif not isinstance(choice, str):
        if not any(t.name == choice.name for t in tools):
            raise ModelError(
                f"tool_choice names {choice.name!r}, which is not among the tools",
                code="invalid_prompt",
            )
        mode = "forced"
        tools = tuple(t for t in tools if t.name == choice.name)
    messages = list(request.messages)
    after = bool(messages) and messages[-1].role == "tool"
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    searched = any(c.name == FILE_SEARCH for m in messages[last_user + 1 :] for c in m.tool_calls)
    search_query: str | None = None
    if (
        mode == "auto"
        and not after
        and not searched
        and any(t.name == FILE_SEARCH for t in tools)
        and refers_to_documents(last_question(messages))
    ):
        # A small model answers questions about the user's documents from thin air,
        # and shortens the query to a few words: one that points at them is searched
        # first, with the whole question (hybrid retrieval ranks it well).
        search_query = last_question(messages)
    instruction = json_instruction(request.response_format)
    prompt = render_chatml(
        messages,
        request.tools if mode == "forced" else tools,
        extra_system=instruction,
        answer_hint=after and mode == "auto",
    )
    kind = (request.response_format or {}).get("type")
    return Plan(
        prompt=prompt,
        mode=mode,
        tools=tools,
        json_mode=kind in ("json_object", "json_schema"),
        after_tool_results=after,
        answer_prompt=(
            render_answer(messages, extra_system=instruction) if after and mode == "auto" else None
        ),
        previous_calls=frozenset(
            _call_key(c.name, c.arguments) for m in messages for c in m.tool_calls
        ),
        turn_functions=frozenset(c.name for m in messages[last_user + 1 :] for c in m.tool_calls),
        question=last_question(messages),
        follows_up=any(m.role == "assistant" for m in messages[: max(last_user, 0)]),
        context="\n".join(m.content for m in messages if m.content and m.role != "tool"),
        results=tuple(m.content or "" for m in messages[last_user + 1 :] if m.role == "tool"),
        search_query=search_query,
    )


def _call_key(name: str, arguments: str) -> tuple[str, str]:
    try:
        value = load_arguments(arguments)
    except ValueError:
        return name, arguments
    return name, json.dumps(value, sort_keys=True)
